package raftstore

import (
	"fmt"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// statesEqual compares what two states say, not which log index each copy was
// taken at: nodes that agree may have applied different configuration entries.
func statesEqual(a, b State) bool {
	a.AppliedIndex, b.AppliedIndex = 0, 0
	return reflect.DeepEqual(a, b)
}

// allocation returns a distinct valid Allocate for i.
func allocation(i int) Allocate {
	return Allocate{Allocation: Allocation{
		Service: fmt.Sprintf("ns/svc-%d", i),
		UID:     fmt.Sprintf("uid-%d", i),
		Pool:    "default",
		IPs:     []string{fmt.Sprintf("198.51.100.%d", i%250+1)},
	}}
}

// failedHeartbeats sums, over leaders past and present, the heartbeats
// that did not reach peer.
func failedHeartbeats(t *testing.T, peer string, leaders ...*Node) float64 {
	var sum float64
	for _, n := range leaders {
		sum += counterValue(t, n.metrics.failedHeartbeats.WithLabelValues(peer))
	}
	return sum
}

func recvBool(t *testing.T, ch <-chan bool) bool {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatal("no leadership change delivered")
		return false
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestClusterReplicatesAndFailsOver(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	c := newCluster(t, 3, ca, DefaultTimeouts())
	for _, n := range c.running() {
		if !n.bootstrapped {
			t.Fatalf("%s did not bootstrap a fresh data dir", n.id)
		}
	}
	first := c.leader()

	c.apply(SetPools{Pools: []Pool{{Name: "default", Ranges: []string{"198.51.100.0/24"}, AutoAssign: true}}})
	for i := 0; i < 10; i++ {
		c.apply(allocation(i))
	}
	want := c.apply(SetOwner{VIP: "198.51.100.1", Node: first.id, Service: "ns/svc-0"}).State()
	if len(want.Allocations) != 10 || len(want.Pools) != 1 || len(want.Owners) != 1 {
		t.Fatalf("leader state incomplete: %#v", want)
	}
	c.converged(c.running(), want)

	// Kill the leader: the others elect one of themselves.
	c.kill(first.id)
	second := c.leader()
	if second.id == first.id {
		t.Fatalf("killed leader %s still leads", first.id)
	}
	want = c.apply(SetOwner{VIP: "198.51.100.1", Node: second.id, Service: "ns/svc-0"}).State()
	if got := want.Owners["198.51.100.1"]; got.Node != second.id || got.Epoch != 2 {
		t.Fatalf("owner after failover = %#v", got)
	}
	c.converged(c.running(), want)

	// The killed node comes back from its data dir and catches up.
	back := c.start(first.id)
	if back.bootstrapped {
		t.Fatal("restarted node bootstrapped again")
	}
	c.converged(c.running(), want)
	if l := c.leader(); l.id == "" {
		t.Fatal("no leader after restart")
	}
}

func TestClusterRestartRestoresState(t *testing.T) {
	// Plain TCP: the insecure transport path gets exercised too.
	c := newCluster(t, 3, nil, DefaultTimeouts())
	c.leader()
	for i := 0; i < 20; i++ {
		c.apply(allocation(i))
	}
	snapState := c.apply(ReportNode{Node: NodeInfo{Name: "n1", Role: RoleVoter, APIServerHealthy: true}}).State()
	c.converged(c.running(), snapState)
	for _, n := range c.running() {
		if err := n.Snapshot(); err != nil {
			t.Fatalf("snapshot %s: %v", n.id, err)
		}
	}
	// Entries after the snapshot are replayed from the log after restart.
	c.apply(Release{Service: "ns/svc-3"})
	want := c.apply(SetOwner{VIP: "198.51.100.7", Node: "n2"}).State()
	c.converged(c.running(), want)

	for _, id := range []string{"n1", "n2", "n3"} {
		c.kill(id)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		n := c.start(id)
		if n.bootstrapped {
			t.Fatalf("%s bootstrapped again over existing state", id)
		}
		// The snapshot is restored synchronously by Open.
		if got := n.State(); !statesEqual(got, snapState) {
			t.Fatalf("%s after Open:\n got %#v\nwant %#v", id, got, snapState)
		}
	}
	c.leader()
	c.converged(c.running(), want)
	if !c.apply(RemoveNode{Name: "n1"}).State().APIServerEverHealthy {
		t.Fatal("sticky APIServerEverHealthy lost across restart")
	}
}

func TestLaggingNodeCatchesUpThroughSnapshot(t *testing.T) {
	tm := DefaultTimeouts()
	tm.SnapshotThreshold = 16
	tm.TrailingLogs = 8
	tm.SnapshotInterval = 50 * time.Millisecond
	c := newCluster(t, 3, newTestCA(t, "ca"), tm)
	l := c.leader()
	var lagger string
	for _, n := range c.running() {
		if n != l {
			lagger = n.id
		}
	}
	c.converged(c.running(), c.apply(SetPools{Pools: []Pool{{Name: "default", Ranges: []string{"198.51.100.0/24"}}}}).State())
	lagIndex := c.node(lagger).raft.LastIndex()
	c.kill(lagger)

	for i := 0; i < 200; i++ {
		l = c.apply(allocation(i))
	}
	if err := l.Snapshot(); err != nil {
		t.Fatal(err)
	}
	first, err := l.logs.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if first <= lagIndex+1 {
		t.Fatalf("leader still has log from %d; lagger needs %d, no snapshot install would be needed", first, lagIndex+1)
	}
	leaderSnap := l.Status().LastSnapshotIndex
	if leaderSnap <= lagIndex {
		t.Fatalf("leader snapshot index %d not past lagger's %d", leaderSnap, lagIndex)
	}

	want := l.State()
	back := c.start(lagger)
	c.converged([]*Node{back}, want)
	// raft records the installed snapshot just after restoring the FSM.
	waitFor(t, "the lagger to record the installed snapshot", func() bool {
		st := back.Status()
		return st.LastSnapshotIndex >= leaderSnap && st.AppliedIndex >= leaderSnap
	})
}

func TestGracefulShutdownTransfersLeadership(t *testing.T) {
	c := newCluster(t, 3, newTestCA(t, "ca"), DefaultTimeouts())
	old := c.apply(SetOwner{VIP: "198.51.100.1", Node: "n1"})

	var transfers atomic.Int64
	for _, n := range c.running() {
		if n == old {
			continue
		}
		ch := make(chan raft.Observation, 64)
		obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
			req, ok := o.Data.(raft.RequestVoteRequest)
			return ok && req.LeadershipTransfer
		})
		n.raft.RegisterObserver(obs)
		go func() {
			for range ch {
				transfers.Add(1)
			}
		}()
		t.Cleanup(func() {
			n.raft.DeregisterObserver(obs)
			close(ch)
		})
	}

	c.stop(old.id)
	next := c.leader()
	if next.id == old.id {
		t.Fatal("old leader still leads")
	}
	// A vote request flagged LeadershipTransfer is only sent by a node
	// the leader told to campaign (TimeoutNow); an election after a
	// missed heartbeat never carries it.
	waitFor(t, "a leadership-transfer vote request", func() bool { return transfers.Load() > 0 })
}

func TestLeadershipChangesFollowTransfers(t *testing.T) {
	c := newCluster(t, 3, nil, DefaultTimeouts())
	l := c.leader()
	waitFor(t, "true on the leader's LeadershipChanges", func() bool {
		select {
		case v := <-l.LeadershipChanges():
			return v
		default:
			return false
		}
	})
	var target *Node
	for _, n := range c.running() {
		if n != l {
			target = n
			break
		}
	}
	if err := l.TransferLeadership(target.id); err != nil {
		t.Fatal(err)
	}
	if got := recvBool(t, l.LeadershipChanges()); got {
		t.Fatal("old leader got true, want false")
	}
	waitFor(t, "the target to lead", target.IsLeader)
	if got := recvBool(t, target.LeadershipChanges()); !got {
		t.Fatal("new leader got false, want true")
	}
}

// TestForeignCertificateNodeNeverJoins adds two nonvoters: one with a
// certificate from the cluster CA (it must receive the state, so the check
// can fail) and one from a foreign CA (it must receive nothing).
func TestForeignCertificateNodeNeverJoins(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	foreign := newTestCA(t, "foreign-ca")
	c := newCluster(t, 3, ca, DefaultTimeouts())
	c.apply(SetPools{Pools: []Pool{{Name: "default", Ranges: []string{"198.51.100.0/24"}}}})

	joiner := func(id string, tlsCfg Config) *Node {
		cfg := tlsCfg
		cfg.NodeID, cfg.BindAddr = id, freeAddr(t)
		cfg.DataDir = filepath.Join(t.TempDir(), id)
		cfg.Timeouts, cfg.Logger = DefaultTimeouts(), testLogger()
		n := c.add(cfg)
		if n.bootstrapped {
			t.Fatalf("%s without peers bootstrapped", id)
		}
		return n
	}
	good := joiner("good", Config{TLS: ca.tlsConfig(t, "good")})
	// The intruder trusts the cluster CA, so only the cluster can refuse it.
	evil := joiner("evil", Config{TLS: MutualTLSConfig(foreign.cert(t, "evil"), ca.pool)})

	for _, n := range []*Node{good, evil} {
		waitFor(t, "the leader to add "+n.id, func() bool {
			for _, v := range []*Node{c.node("n1"), c.node("n2"), c.node("n3")} {
				if v.IsLeader() && v.AddNonvoter(n.id, string(n.trans.LocalAddr())) == nil {
					return true
				}
			}
			return false
		})
	}
	c.converged([]*Node{good}, c.apply(allocation(1)).State())
	waitFor(t, "the good joiner to know the leader", func() bool {
		id, _ := good.Leader()
		return id != ""
	})
	waitFor(t, "the leader to fail heartbeats to the intruder", func() bool {
		return failedHeartbeats(t, "evil", c.node("n1"), c.node("n2"), c.node("n3")) >= 3
	})
	if got := evil.State(); !statesEqual(got, NewState()) {
		t.Fatalf("intruder received state: %#v", got)
	}
	if id, _ := evil.Leader(); id != "" {
		t.Fatalf("intruder learned leader %q", id)
	}
	if idx := evil.raft.LastIndex(); idx != 0 {
		t.Fatalf("intruder has log up to %d", idx)
	}
}

// TestForeignCertificateVoterIsShutOut: of three bootstrapped voters, the
// one with a foreign certificate can neither vote nor be heard; the other
// two form the cluster without it.
func TestForeignCertificateVoterIsShutOut(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	foreign := newTestCA(t, "foreign-ca")
	var peers []Peer
	for _, id := range []string{"a", "b", "x"} {
		peers = append(peers, Peer{ID: id, Address: freeAddr(t)})
	}
	c := &cluster{t: t, cfgs: map[string]Config{}, nodes: map[string]*Node{}}
	t.Cleanup(c.stopAll)
	base := t.TempDir()
	for _, p := range peers {
		tlsCfg := ca.tlsConfig(t, p.ID)
		if p.ID == "x" {
			tlsCfg = MutualTLSConfig(foreign.cert(t, "x"), ca.pool)
		}
		c.add(Config{
			NodeID: p.ID, BindAddr: p.Address, DataDir: filepath.Join(base, p.ID),
			Peers: peers, TLS: tlsCfg, Timeouts: DefaultTimeouts(), Logger: testLogger(),
		})
	}
	x := c.node("x")
	var l *Node
	waitFor(t, "a or b to lead", func() bool {
		for _, id := range []string{"a", "b"} {
			if n := c.node(id); n.IsLeader() {
				l = n
				return true
			}
		}
		return false
	})
	l = c.apply(SetOwner{VIP: "198.51.100.1", Node: "a"})
	c.converged([]*Node{c.node("a"), c.node("b")}, l.State())
	waitFor(t, "x to campaign and the leader to fail heartbeats to it", func() bool {
		return counterValue(t, x.metrics.stateChanges.WithLabelValues("Candidate")) >= 1 &&
			failedHeartbeats(t, "x", c.node("a"), c.node("b")) >= 3
	})
	if x.IsLeader() {
		t.Fatal("x leads")
	}
	if id, _ := x.Leader(); id != "" {
		t.Fatalf("x learned leader %q", id)
	}
	if got := x.State(); !statesEqual(got, NewState()) {
		t.Fatalf("x received state: %#v", got)
	}
}
