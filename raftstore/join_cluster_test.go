package raftstore

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftvip/raftvip/daemon/membership"
)

// joinCluster grows a cluster the way kubeadm does: a --bootstrap node, then
// nodes that join through it. Every node logs into logs.
type joinCluster struct {
	*cluster
	ca   *testCA
	logs *logBuffer
	base string
	// stop ends every join loop.
	stop context.CancelFunc
	ctx  context.Context
	wg   sync.WaitGroup
}

func newJoinCluster(t testing.TB, maxNonvoters int) *joinCluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	jc := &joinCluster{
		cluster: &cluster{t: t, cfgs: map[string]Config{}, nodes: map[string]*Node{}},
		ca:      newTestCA(t, "cluster-ca"), logs: &logBuffer{}, base: t.TempDir(), ctx: ctx, stop: cancel,
	}
	t.Cleanup(func() {
		cancel()
		jc.wg.Wait()
		jc.killAll()
	})
	addr := freeAddr(t)
	jc.add(Config{NodeID: "n1", BindAddr: addr, DataDir: filepath.Join(jc.base, "n1"), Peers: []Peer{{ID: "n1", Address: addr}},
		Timeouts: calmTimeouts(), Logger: jc.logger(), TLS: jc.ca.tlsConfig(t, "n1"), MaxNonvoters: maxNonvoters})
	return jc
}

// killAll stops every node abruptly, allowing each waitTimeout: with five nodes
// on a loaded machine, raft's pipelined replication to a peer that just died can
// hold a shutdown for a few transport timeouts.
func (jc *joinCluster) killAll() {
	for _, n := range jc.running() {
		n.shutdownOnce.Do(func() { n.shutdownErr = n.shutdown(waitTimeout, false) })
		if n.shutdownErr != nil {
			jc.t.Errorf("kill %s: %v", n.id, n.shutdownErr)
		}
	}
}

func (jc *joinCluster) logger() *slog.Logger {
	if os.Getenv("RAFTSTORE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(multiWriter{jc.logs, os.Stderr}, nil))
	}
	return slog.New(slog.NewTextHandler(jc.logs, nil))
}

type multiWriter [2]interface{ Write([]byte) (int, error) }

func (m multiWriter) Write(p []byte) (int, error) {
	_, _ = m[1].Write(p)
	return m[0].Write(p)
}

// joiner starts node id with an empty data dir (or its old one) and a join loop
// through via, as the agent's joinLoop does: join until added, then, for a
// control-plane node, report progress until promoted.
func (jc *joinCluster) joiner(id string, controlPlane bool, via ...string) *Node {
	jc.t.Helper()
	if _, ok := jc.cfgs[id]; !ok {
		cert := jc.ca.cert(jc.t, id)
		if !controlPlane {
			cert = jc.ca.workerCert(jc.t, id)
		}
		cfg := Config{NodeID: id, BindAddr: freeAddr(jc.t), DataDir: filepath.Join(jc.base, id), Timeouts: calmTimeouts(),
			Logger: jc.logger(), TLS: MutualTLSConfig(cert, jc.ca.pool), ControlPlane: controlPlane, MaxNonvoters: jc.cfgs["n1"].MaxNonvoters}
		jc.mu.Lock()
		jc.cfgs[id] = cfg
		jc.order = append(jc.order, id)
		jc.mu.Unlock()
	}
	n := jc.start(id)
	jc.wg.Add(1)
	go func() {
		defer jc.wg.Done()
		joined := false
		for i := 0; jc.ctx.Err() == nil; i++ {
			if !joined || n.AwaitingPromotion() {
				joined = n.Join(via[i%len(via)], 2*time.Second) == nil || joined
			}
			select {
			case <-jc.ctx.Done():
			case <-n.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return n
}

func (jc *joinCluster) addr(id string) string { return jc.cfgs[id].BindAddr }

// suffrages is the leader's configuration as id=suffrage, sorted by id.
func suffrages(t testing.TB, n *Node) map[string]string {
	t.Helper()
	servers, err := n.Servers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range servers {
		out[s.ID] = s.Suffrage
	}
	return out
}

func voters(t testing.TB, n *Node) int {
	c := 0
	for _, s := range suffrages(t, n) {
		if s == SuffrageVoter {
			c++
		}
	}
	return c
}

// waitVoters waits until the leader's configuration has exactly want voters
// and every running node has the leader's state.
func (jc *joinCluster) waitVoters(want int) *Node {
	jc.t.Helper()
	var l *Node
	waitFor(jc.t, fmt.Sprintf("%d voters", want), func() bool {
		for _, n := range jc.running() {
			if n.IsLeader() && voters(jc.t, n) == want {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

func testPools(name string) SetPools {
	return SetPools{Pools: []Pool{{Name: name, Ranges: []string{"198.51.100.0/24"}, AutoAssign: true}}}
}

func TestBootstrapAlone(t *testing.T) {
	jc := newJoinCluster(t, 0)
	l := jc.leader()
	if l.id != "n1" || !l.bootstrapped {
		t.Fatalf("leader %s bootstrapped=%v, want n1 having bootstrapped", l.id, l.bootstrapped)
	}
	if got := suffrages(t, l); len(got) != 1 || got["n1"] != SuffrageVoter {
		t.Fatalf("configuration %v, want n1 alone as voter", got)
	}
	want := jc.apply(testPools("alone")).State()
	if len(want.Pools) != 1 {
		t.Fatalf("state after apply: %#v", want)
	}
}

func TestJoinAndPromotionToThreeVoters(t *testing.T) {
	jc := newJoinCluster(t, 0)
	jc.apply(testPools("before"))
	jc.joiner("n2", true, jc.addr("n1"))
	waitFor(t, "n2 to be a nonvoter", func() bool { return suffrages(t, jc.node("n1"))["n2"] == SuffrageNonvoter })
	// n2 alone is held: 2 voters would tolerate no more failures than 1 and need
	// both for every commit. Hold for longer than the stable period.
	time.Sleep(membership.DefaultPolicy.Stable + time.Second)
	if got := suffrages(t, jc.node("n1")); got["n2"] != SuffrageNonvoter {
		t.Fatalf("n2 alone was promoted: %v", got)
	}
	if held := jc.logs.lines("promotion waits", "even count"); len(held) == 0 {
		t.Fatal("no log line says why n2 is held")
	}
	// n3 joins through n2, a nonvoter: it points at the leader.
	jc.joiner("n3", true, jc.addr("n2"))
	l := jc.waitVoters(3)
	want := jc.apply(testPools("after")).State()
	jc.converged(jc.running(), want)
	waitFor(t, "two promotion lines", func() bool { return len(jc.logs.lines("promoted a nonvoter to voter")) >= 2 })
	if got := jc.logs.lines("promoted a nonvoter to voter"); len(got) != 2 {
		t.Fatalf("want one promotion line per change (2), got:\n%s", strings.Join(got, "\n"))
	}
	for _, n := range jc.running() {
		if n.AwaitingPromotion() {
			t.Errorf("%s still awaits promotion", n.id)
		}
	}
	// Any voter can lead now: the promoted ones were caught up.
	if err := l.TransferLeadership(""); err != nil {
		t.Fatal(err)
	}
	jc.apply(testPools("new leader"))
}

func TestConcurrentJoins(t *testing.T) {
	jc := newJoinCluster(t, 0)
	jc.apply(testPools("p"))
	via := jc.addr("n1")
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, j := range []struct {
		id string
		cp bool
	}{{"n2", true}, {"n3", true}, {"n4", true}, {"n5", true}, {"w1", false}, {"w2", false}, {"w3", false}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			jc.joiner(j.id, j.cp, via)
		}()
	}
	wg.Wait()
	l := jc.waitVoters(5)
	waitFor(t, "three worker nonvoters", func() bool {
		got := suffrages(t, l)
		return len(got) == 8 && got["w1"] == SuffrageNonvoter && got["w2"] == SuffrageNonvoter && got["w3"] == SuffrageNonvoter
	})
	want := jc.apply(testPools("q")).State()
	jc.converged(jc.running(), want)
	// The line follows the change's commit.
	waitFor(t, "four promotion lines", func() bool { return len(jc.logs.lines("promoted a nonvoter to voter")) >= 4 })
	if got := len(jc.logs.lines("promoted a nonvoter to voter")); got != 4 {
		t.Fatalf("%d promotions logged, want 4", got)
	}
}

func TestJoinDuringLeaderChange(t *testing.T) {
	jc := newJoinCluster(t, 0)
	jc.joiner("n2", true, jc.addr("n1"))
	jc.joiner("n3", true, jc.addr("n1"))
	jc.waitVoters(3)
	// Two more control-plane nodes join while leadership moves every 300ms.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 8; i++ {
			for _, n := range jc.running() {
				if n.IsLeader() {
					_ = n.TransferLeadership("")
				}
			}
			time.Sleep(300 * time.Millisecond)
		}
	}()
	jc.joiner("n4", true, jc.addr("n1"), jc.addr("n2"), jc.addr("n3"))
	jc.joiner("n5", true, jc.addr("n3"), jc.addr("n2"))
	<-done
	jc.waitVoters(5)
	want := jc.apply(testPools("after moves")).State()
	jc.converged(jc.running(), want)
}

func TestWipedMemberRejoinsAndGetsTheState(t *testing.T) {
	jc := newJoinCluster(t, 0)
	jc.joiner("n2", true, jc.addr("n1"))
	jc.joiner("n3", true, jc.addr("n1"))
	jc.waitVoters(3)
	jc.apply(testPools("before wipe"))
	jc.kill("n3")
	if err := os.RemoveAll(jc.cfgs["n3"].DataDir); err != nil {
		t.Fatal(err)
	}
	n3 := jc.joiner("n3", true, jc.addr("n2"), jc.addr("n1"))
	// The leader removes it before anything else: a voter without its votes
	// never stays one. Under load the add that follows may fail; the next join
	// then adds it anew.
	waitFor(t, "the wiped n3 to be removed", func() bool {
		return len(jc.logs.lines("removed a member that came back with an empty data dir", "id=n3")) >= 1
	})
	l := jc.waitVoters(3)
	waitFor(t, "n3 to be a voter again", func() bool { return suffrages(t, l)["n3"] == SuffrageVoter })
	want := jc.apply(testPools("after wipe")).State()
	jc.converged(jc.running(), want)
	if _, ok := n3.State().Pools["after wipe"]; len(n3.State().Pools) != 1 || !ok {
		t.Fatalf("n3 state after rejoin: %#v", n3.State().Pools)
	}
	if got := len(jc.logs.lines("removed a member that came back with an empty data dir")); got != 1 {
		t.Fatalf("n3 was removed as wiped %d times, want once: once added, it has state", got)
	}
}

// joinAs sends one hand-made join request from node from (whose certificate
// names it) to the leader.
func joinAs(from *Node, to string, id, addr string, info joinInfo) error {
	_, err := from.requestResp(to, forwardRequest{Op: "join", ID: id, Address: addr, Join: &info}, 5*time.Second)
	return err
}

func TestJoinRefusals(t *testing.T) {
	jc := newJoinCluster(t, 0)
	jc.joiner("n2", true, jc.addr("n1"))
	jc.joiner("n3", true, jc.addr("n1"))
	l := jc.waitVoters(3)
	before := suffrages(t, l)
	// An impostor n3 elsewhere (control-plane certificate, a data dir of its own)
	// and a worker using a voter's name.
	jc.mu.Lock()
	jc.cfgs["n3x"] = Config{NodeID: "n3", BindAddr: freeAddr(t), DataDir: filepath.Join(jc.base, "n3x"), Timeouts: calmTimeouts(),
		Logger: jc.logger(), TLS: jc.ca.tlsConfig(t, "n3")}
	jc.cfgs["w2x"] = Config{NodeID: "n2", BindAddr: freeAddr(t), DataDir: filepath.Join(jc.base, "w2x"), Timeouts: calmTimeouts(),
		Logger: jc.logger(), TLS: MutualTLSConfig(jc.ca.workerCert(t, "n2"), jc.ca.pool)}
	jc.mu.Unlock()
	n3x, w2x := jc.start("n3x"), jc.start("w2x")
	leaderAddr := string(l.trans.LocalAddr())
	for _, tc := range []struct {
		name string
		from *Node
		id   string
		addr string
		info joinInfo
		code string
	}{
		{"re-address a voter", n3x, "n3", string(n3x.trans.LocalAddr()), joinInfo{HasState: true, Voter: true}, membership.CodeVoterReaddress},
		{"worker names a voter", w2x, "n2", string(w2x.trans.LocalAddr()), joinInfo{HasState: false}, membership.CodeNotControlPlane},
		{"worker asks to vote", w2x, "n2", string(w2x.trans.LocalAddr()), joinInfo{HasState: true, Voter: true}, membership.CodeNotControlPlane},
		{"certificate for another name", n3x, "n9", string(n3x.trans.LocalAddr()), joinInfo{HasState: true}, membership.CodeNameMismatch},
		{"another member's address", n3x, "n3", jc.addr("n2"), joinInfo{HasState: false, Voter: true}, membership.CodeAddressTaken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctr := l.mem.refused.WithLabelValues(tc.code)
			was := counterValue(t, ctr)
			err := joinAs(tc.from, leaderAddr, tc.id, tc.addr, tc.info)
			if err == nil || !strings.Contains(err.Error(), "join refused ("+tc.code+")") {
				t.Fatalf("join: %v, want refused with %s", err, tc.code)
			}
			if got := counterValue(t, ctr); got != was+1 {
				t.Fatalf("raftvip_raft_joins_refused_total{reason=%q} = %v, want %v", tc.code, got, was+1)
			}
			if got := jc.logs.lines("refused join", "code="+tc.code); len(got) == 0 {
				t.Fatalf("no log line for the refusal %s", tc.code)
			}
		})
	}
	after := suffrages(t, l)
	for id, s := range before {
		if after[id] != s {
			t.Fatalf("configuration changed by refused joins: %v -> %v", before, after)
		}
	}
	servers, _ := l.Servers()
	for _, s := range servers {
		if s.ID == "n3" && s.Address != jc.addr("n3") {
			t.Fatalf("n3 re-addressed to %s", s.Address)
		}
	}
}

func TestNonvoterCapRefusesWorkers(t *testing.T) {
	jc := newJoinCluster(t, 2)
	via := jc.addr("n1")
	jc.joiner("w1", false, via)
	jc.joiner("w2", false, via)
	l := jc.leader()
	waitFor(t, "two worker nonvoters", func() bool { return len(suffrages(t, l)) == 3 })
	ctr := l.mem.refused.WithLabelValues(membership.CodeNonvoterLimit)
	jc.joiner("w3", false, via)
	waitFor(t, "w3 refused", func() bool { return counterValue(t, ctr) >= 1 })
	if err := jc.node("w3").Join(via, 5*time.Second); err == nil || !strings.Contains(err.Error(), "nonvoter_limit") || !strings.Contains(err.Error(), "--max-nonvoters") {
		t.Fatalf("w3 join past the cap: %v", err)
	}
	if _, ok := suffrages(t, l)["w3"]; ok {
		t.Fatal("w3 was added past the cap")
	}
	// A control-plane node still joins and is held as the cluster's second voter-to-be.
	jc.joiner("n2", true, via)
	waitFor(t, "n2 to be a member past the worker cap", func() bool { return suffrages(t, l)["n2"] == SuffrageNonvoter })
}

// TestWorkerMovesToANewAddress: a worker whose address changed (DHCP, a new NIC)
// joins again from the new one with its own certificate and data dir. While the
// leader still hears from a node at the old address, the join is refused
// (worker_readdress: the same name from somewhere else); once the old address
// has gone silent, the worker's entry moves and it replicates from there.
func TestWorkerMovesToANewAddress(t *testing.T) {
	ca := newTestCA(t, "ca")
	c := newCluster(t, 1, ca, DefaultTimeouts())
	l := c.leader()
	leaderAddr := string(l.trans.LocalAddr())
	workerTLS := MutualTLSConfig(ca.workerCert(t, "w1"), ca.pool)
	w := c.add(Config{NodeID: "w1", BindAddr: freeAddr(t), DataDir: filepath.Join(t.TempDir(), "w1"), Timeouts: DefaultTimeouts(),
		Logger: testLogger(), TLS: workerTLS})
	if err := w.Join(leaderAddr, 5*time.Second); err != nil {
		t.Fatalf("w1 joins: %v", err)
	}
	oldAddr := string(w.trans.LocalAddr())
	w1 := func(l *Node) membership.Member { return memberSeenBy(l, "w1") }
	waitFor(t, "the leader to hear from w1", func() bool { return w1(l).Healthy })

	// The same name from another address while w1 still answers at the old one.
	c.add(Config{NodeID: "w1x", BindAddr: freeAddr(t), DataDir: filepath.Join(t.TempDir(), "w1x"), Timeouts: DefaultTimeouts(),
		Logger: testLogger(), TLS: workerTLS})
	impostor := c.node("w1x")
	err := joinAs(impostor, leaderAddr, "w1", string(impostor.trans.LocalAddr()), joinInfo{HasState: true})
	if err == nil || !strings.Contains(err.Error(), "join refused ("+membership.CodeWorkerReaddress+")") || !strings.Contains(err.Error(), "still answers") {
		t.Fatalf("join of w1 from a second address while the first answers: %v", err)
	}
	c.kill("w1x")

	// w1 moves: its old address goes silent, it comes back elsewhere.
	c.kill("w1")
	waitFor(t, "the leader to stop hearing from w1's old address", func() bool { return w1(l).Silent })
	cfg := c.cfgs["w1"]
	cfg.BindAddr = freeAddr(t)
	c.cfgs["w1"] = cfg
	w = c.start("w1")
	if err := w.Join(leaderAddr, 5*time.Second); err != nil {
		t.Fatalf("w1 joins from its new address: %v", err)
	}
	servers, err := l.Servers()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		if s.ID == "w1" && (s.Address != cfg.BindAddr || s.Suffrage != SuffrageNonvoter) {
			t.Fatalf("w1 is %s at %s, want a nonvoter at %s (was %s)", s.Suffrage, s.Address, cfg.BindAddr, oldAddr)
		}
	}
	c.apply(SetPools{Pools: []Pool{{Name: "moved", Ranges: []string{"198.51.100.0/28"}}}})
	commit := l.raft.CommitIndex()
	waitFor(t, "w1 to apply what the leader committed after the move", func() bool { return w.raft.AppliedIndex() >= commit })
}

// memberSeenBy is member id as leader l's membership rules see it.
func memberSeenBy(l *Node, id string) membership.Member {
	l.mem.mu.Lock()
	defer l.mem.mu.Unlock()
	for _, m := range l.membersView(l.raft.GetConfiguration().Configuration()) {
		if m.ID == id {
			return m
		}
	}
	return membership.Member{}
}

// TestWorkerMovesAfterALeaderChange: a worker's old address went silent while
// another voter led, so the new leader never heard from it there. Once the new
// leader has led for longer than a member may go unheard, the old address counts
// as silent and the worker's join from its new address moves its entry; before,
// the move was refused (worker_readdress) until --worker-removal-timeout pruned
// the worker.
func TestWorkerMovesAfterALeaderChange(t *testing.T) {
	ca := newTestCA(t, "ca")
	c := newCluster(t, 3, ca, DefaultTimeouts())
	l := c.leader()
	w := c.add(Config{NodeID: "w1", BindAddr: freeAddr(t), DataDir: filepath.Join(t.TempDir(), "w1"), Timeouts: DefaultTimeouts(),
		Logger: testLogger(), TLS: MutualTLSConfig(ca.workerCert(t, "w1"), ca.pool)})
	if err := w.Join(string(l.trans.LocalAddr()), 5*time.Second); err != nil {
		t.Fatalf("w1 joins: %v", err)
	}
	waitFor(t, "the leader to hear from w1", func() bool { return memberSeenBy(l, "w1").Healthy })
	c.kill("w1")
	if err := l.raft.LeadershipTransfer().Error(); err != nil {
		t.Fatalf("leadership transfer: %v", err)
	}
	next := c.leader()
	if next == l {
		t.Fatal("the leadership transfer kept the old leader")
	}
	if m := memberSeenBy(next, "w1"); m.Healthy {
		t.Fatalf("the new leader counts w1 healthy without hearing from it: %+v", m)
	}
	waitFor(t, "the new leader to count w1's old address silent", func() bool { return memberSeenBy(next, "w1").Silent })
	cfg := c.cfgs["w1"]
	cfg.BindAddr = freeAddr(t)
	c.cfgs["w1"] = cfg
	w = c.start("w1")
	if err := w.Join(string(next.trans.LocalAddr()), 5*time.Second); err != nil {
		t.Fatalf("w1 joins from its new address under the new leader: %v", err)
	}
	servers, err := next.Servers()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		if s.ID == "w1" && s.Address != cfg.BindAddr {
			t.Fatalf("w1 is at %s, want %s", s.Address, cfg.BindAddr)
		}
	}
}
