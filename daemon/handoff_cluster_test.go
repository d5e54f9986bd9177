package daemon

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/raftvip/raftvip/daemon/assign"
	"github.com/raftvip/raftvip/daemon/handoff"
	"github.com/raftvip/raftvip/raftstore"
)

// storeCluster is three real Raft stores on loopback with mutual TLS, each wrapped
// in a Daemon with just what the leader's owner decisions and the owner's
// release confirmations need.
type storeCluster struct {
	t       *testing.T
	daemons map[string]*Daemon
}

func newStoreCluster(t *testing.T, fence time.Duration) *storeCluster {
	t.Helper()
	caCert, caKey := writeTestCA(t, t.TempDir())
	caPEM, keyPEM := mustRead(t, caCert), mustRead(t, caKey)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("test CA does not parse")
	}
	var peers []raftstore.Peer
	for _, id := range []string{"a", "b", "c"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, raftstore.Peer{ID: id, Address: l.Addr().String()})
		_ = l.Close()
	}
	c := &storeCluster{t: t, daemons: map[string]*Daemon{}}
	dir := t.TempDir()
	// Slow elections: a CPU-starved test machine must not elect a new leader
	// in the middle of a pass ("leadership lost while committing").
	tm := raftstore.DefaultTimeouts()
	tm.Heartbeat, tm.LeaderLoss, tm.Election, tm.LeaderLease = time.Second, time.Second, time.Second, 500*time.Millisecond
	for _, p := range peers {
		cert, err := raftstore.IssuePeerCert(caPEM, keyPEM, p.ID, []net.IP{net.ParseIP("127.0.0.1")}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		log := slog.New(slog.DiscardHandler)
		n, err := raftstore.Open(raftstore.Config{NodeID: p.ID, BindAddr: p.Address, DataDir: filepath.Join(dir, p.ID),
			Peers: peers, TLS: raftstore.MutualTLSConfig(cert, pool), Timeouts: tm, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Shutdown(time.Second) })
		cfg := &Parsed{Config: Config{NodeName: p.ID, Raft: tm, FenceTimeout: fence, NodeDownTimeout: 10 * fence}}
		c.daemons[p.ID] = &Daemon{cfg: cfg, log: log, node: n, m: newMetrics()}
	}
	waitFor(t, "a leader whose term's barrier committed", func() bool {
		l := c.leader()
		return l != nil && l.node.Barrier(time.Second) == nil
	})
	return c
}

func (c *storeCluster) leader() *Daemon {
	for _, d := range c.daemons {
		if d.node.IsLeader() {
			return d
		}
	}
	return nil
}

// follower is a non-leader daemon, the first by name.
func (c *storeCluster) follower() *Daemon {
	for _, id := range []string{"a", "b", "c"} {
		if d := c.daemons[id]; !d.node.IsLeader() {
			return d
		}
	}
	c.t.Fatal("no follower")
	return nil
}

func (c *storeCluster) apply(cmd raftstore.Command) {
	c.t.Helper()
	if err := c.leader().node.Apply(cmd, 5*time.Second); err != nil {
		c.t.Fatalf("apply %T: %v", cmd, err)
	}
}

// pass runs one leader decision with tr, as the leader loop does.
func (c *storeCluster) pass(tr *handoff.Tracker) {
	c.t.Helper()
	l := c.leader()
	servers, err := l.node.Servers()
	if err != nil {
		c.t.Fatal(err)
	}
	l.assignOwners(l.node.State(), servers, l.node.PeerContacts(servers), time.Now().Add(-time.Hour), tr)
}

// owner is vip's owner once every running store has applied the same record.
func (c *storeCluster) owner(vip string) raftstore.Owner {
	c.t.Helper()
	var o raftstore.Owner
	waitFor(c.t, "every store agrees on the owner of "+vip, func() bool {
		o, _ = c.leader().node.Owner(vip)
		for _, d := range c.daemons {
			if got, _ := d.node.Owner(vip); got != o {
				return false
			}
		}
		return true
	})
	return o
}

const handoffVIP = "198.51.100.100"

// drainingOwner commits a Service whose VIP the follower owns, then reports the
// follower draining: the next leader pass plans a move away from it.
func (c *storeCluster) drainingOwner() *Daemon {
	c.t.Helper()
	f := c.follower()
	c.apply(raftstore.Allocate{Allocation: raftstore.Allocation{Service: "ns/web", UID: "u1", Pool: "main", IPs: []string{handoffVIP}}})
	c.apply(raftstore.SetOwner{VIP: handoffVIP, Node: f.cfg.NodeName, Service: "ns/web"})
	if err := f.node.Forward(raftstore.ReportNode{Node: raftstore.NodeInfo{Name: f.cfg.NodeName, Role: raftstore.RoleVoter, Draining: true, InterfaceUp: true}}, 5*time.Second); err != nil {
		c.t.Fatal(err)
	}
	waitFor(c.t, "the leader sees the drain", func() bool { return c.leader().node.State().Nodes[f.cfg.NodeName].Draining })
	return f
}

func TestHandoffConfirmedThroughRealStores(t *testing.T) {
	c := newStoreCluster(t, 300*time.Millisecond)
	f := c.drainingOwner()
	var tr handoff.Tracker
	c.pass(&tr)
	o := c.owner(handoffVIP)
	if o.Node != f.cfg.NodeName || !o.Releasing || o.Released || o.Epoch != 1 {
		t.Fatalf("after the first pass the owner is %+v, want %s still recorded and asked to release", o, f.cfg.NodeName)
	}
	c.pass(&tr)
	if o2 := c.owner(handoffVIP); o2 != o {
		t.Fatalf("an unconfirmed, young release moved the VIP: %+v", o2)
	}
	// The owner confirms about itself, through the leader, over mutual TLS.
	var acks acker
	f.confirmReleases(&acks, f.node.State(), nil, time.Now())
	waitFor(t, "the release confirmed", func() bool { o, _ := c.leader().node.Owner(handoffVIP); return o.Released })
	c.pass(&tr)
	moved := c.owner(handoffVIP)
	if moved.Node == f.cfg.NodeName || moved.Node == "" || moved.Releasing || moved.Released || moved.Epoch != 2 {
		t.Fatalf("after the confirmation the owner is %+v, want another node at epoch 2 with the marks cleared", moved)
	}
	// A late or repeated confirmation changes nothing now.
	if err := f.node.Forward(raftstore.AckRelease{VIP: handoffVIP, Node: f.cfg.NodeName, Epoch: 1}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c.pass(&tr)
	if got := c.owner(handoffVIP); got != moved {
		t.Fatalf("a late ack changed the owner to %+v", got)
	}
}

func TestHandoffUnconfirmedWaitsForTheFence(t *testing.T) {
	c := newStoreCluster(t, 300*time.Millisecond)
	f := c.drainingOwner()
	wait := releaseWait(f.cfg)
	var tr handoff.Tracker
	c.pass(&tr)
	released := time.Now()
	if o := c.owner(handoffVIP); !o.Releasing {
		t.Fatalf("no release: %+v", o)
	}
	// The owner is frozen: it never confirms. Until the wait is over, passes move nothing.
	for time.Since(released) < wait/2 {
		c.pass(&tr)
		if o := c.owner(handoffVIP); o.Node != f.cfg.NodeName {
			t.Fatalf("moved to %s %s after the release, before the fence wait %s", o.Node, time.Since(released), wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var o raftstore.Owner
	waitFor(t, "the move once the release is older than the fence", func() bool {
		c.pass(&tr)
		o, _ = c.leader().node.Owner(handoffVIP)
		return o.Node != f.cfg.NodeName
	})
	if since := time.Since(released); since < wait {
		t.Fatalf("the new owner was committed %s after the release, before the fence wait %s", since, wait)
	}
	if o.Node == "" || o.Releasing || o.Epoch != 2 {
		t.Fatalf("owner after the wait: %+v", o)
	}
}

func TestHandoffTakenBackWhenTheOwnerStaysEligible(t *testing.T) {
	c := newStoreCluster(t, 300*time.Millisecond)
	f := c.drainingOwner()
	var tr handoff.Tracker
	c.pass(&tr)
	if o := c.owner(handoffVIP); !o.Releasing {
		t.Fatalf("no release: %+v", o)
	}
	// The node restarts before the move and reports it is no longer draining (its
	// interface up, or the leader would move the VIP for that instead).
	if err := f.node.Forward(raftstore.ReportNode{Node: raftstore.NodeInfo{Name: f.cfg.NodeName, Role: raftstore.RoleVoter, InterfaceUp: true}}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the leader sees the drain end", func() bool { return !c.leader().node.State().Nodes[f.cfg.NodeName].Draining })
	c.pass(&tr)
	o := c.owner(handoffVIP)
	if o.Node != f.cfg.NodeName || o.Releasing || o.Released || o.Epoch != 2 {
		t.Fatalf("owner %+v, want %s again at epoch 2 with the release taken back", o, f.cfg.NodeName)
	}
}

func TestHandoffOwnerDownMovesInOneStep(t *testing.T) {
	c := newStoreCluster(t, 50*time.Millisecond)
	f := c.follower()
	c.apply(raftstore.Allocate{Allocation: raftstore.Allocation{Service: "ns/web", UID: "u1", Pool: "main", IPs: []string{handoffVIP}}})
	c.apply(raftstore.SetOwner{VIP: handoffVIP, Node: f.cfg.NodeName, Service: "ns/web"})
	_ = c.owner(handoffVIP)
	if err := f.node.Shutdown(time.Second); err != nil {
		t.Fatal(err)
	}
	delete(c.daemons, f.cfg.NodeName)
	var tr handoff.Tracker
	l := c.leader()
	waitFor(t, "the dead owner's VIP moved", func() bool {
		c.pass(&tr)
		o, _ := l.node.Owner(handoffVIP)
		return o.Node != f.cfg.NodeName
	})
	o, _ := l.node.Owner(handoffVIP)
	if o.Releasing || o.Released || o.Epoch != 2 || o.Node == "" {
		t.Fatalf("owner %+v, want a live node at epoch 2 without a release in between", o)
	}
	if n := len(tr.Observe(handoffOwners(l.node.State()), time.Now())); n != 0 {
		t.Fatalf("%d releases pending after a move away from a down node", n)
	}
}

func TestReachable(t *testing.T) {
	now := time.Now()
	servers := []raftstore.Server{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}}
	contacts := map[string]time.Time{"b": now.Add(-100 * time.Millisecond), "c": now.Add(-time.Second)}
	got := reachable("a", servers, contacts, now.Add(-time.Hour), now, 600*time.Millisecond)
	want := map[string]bool{"a": true, "b": true, "c": false, "d": false}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("reachable = %v, want %v", got, want)
	}
	fresh := reachable("a", servers, nil, now.Add(-100*time.Millisecond), now, 600*time.Millisecond)
	if !fresh["d"] {
		t.Error("a leader of 100 ms gives a server it has not heard from yet the node-down grace")
	}
}

func TestPlanCommands(t *testing.T) {
	v1, v2, v3 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.3")
	p := handoff.Plan{
		Release: []assign.Decision{{VIP: v1, From: "a", To: "b"}},
		Commit: []handoff.Commit{
			{Decision: assign.Decision{VIP: v2, From: "a", To: "c", Service: "ns/x"}, Via: handoff.ViaAcked},
			{Decision: assign.Decision{VIP: v3, From: "a"}, Via: handoff.ViaDirect},
		},
	}
	got := planCommands(p)
	want := raftstore.Batch{Commands: []raftstore.Command{
		raftstore.ReleaseOwner{VIP: "198.51.100.1"},
		raftstore.SetOwner{VIP: "198.51.100.2", Node: "c", Service: "ns/x"},
		raftstore.RemoveOwner{VIP: "198.51.100.3"},
	}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("planCommands = %+v, want %+v", got, want)
	}
	if _, err := raftstore.Encode(got); err != nil {
		t.Fatalf("the plan's batch does not encode: %v", err)
	}
}

func TestReleaseWaitCoversTheFence(t *testing.T) {
	c := bgpConfigL2()
	p, err := c.Validate()
	if err != nil {
		t.Fatal(err)
	}
	w := releaseWait(p)
	if w < p.FenceTimeout+p.Raft.Commit {
		t.Fatalf("release wait %s is shorter than the fence %s plus the commit timeout %s", w, p.FenceTimeout, p.Raft.Commit)
	}
	if w >= p.NodeDownTimeout {
		t.Errorf("release wait %s is not shorter than the node-down timeout %s: a frozen owner would be handled as down first", w, p.NodeDownTimeout)
	}
}

func TestAnnouncerChanges(t *testing.T) {
	v1, v2 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	p := handoff.Plan{Commit: []handoff.Commit{
		{Decision: assign.Decision{VIP: v1, From: "a", To: "a", Reason: handoff.ReasonReleaseTakenBack}, Via: handoff.ViaKept},
		{Decision: assign.Decision{VIP: v2, From: "a", To: "b", Reason: assign.ReasonExcluded}, Via: handoff.ViaAcked},
	}}
	got := announcerChanges(p)
	if len(got) != 1 || got[0].VIP != v2 {
		t.Fatalf("announcerChanges = %+v, want only the move to b (a release taken back keeps its announcer)", got)
	}
	if len(commitDecisions(p)) != 2 {
		t.Fatal("commitDecisions must keep the take-back: it is still committed")
	}
}

func TestHandoffOwners(t *testing.T) {
	st := raftstore.State{Owners: map[string]raftstore.Owner{
		"198.51.100.1": {VIP: "198.51.100.1", Node: "a", Epoch: 3, Service: "ns/x", Releasing: true, Released: true},
		"bogus":        {VIP: "bogus", Node: "a"},
	}}
	got := handoffOwners(st)
	want := map[netip.Addr]handoff.Owner{netip.MustParseAddr("198.51.100.1"): {Node: "a", Epoch: 3, Service: "ns/x", Releasing: true, Released: true}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("handoffOwners = %v, want %v", got, want)
	}
}
