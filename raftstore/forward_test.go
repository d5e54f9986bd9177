package raftstore

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func follower(c *cluster, leader *Node) *Node {
	for _, n := range c.running() {
		if n != leader {
			return n
		}
	}
	return nil
}

func TestForwardReportFromFollower(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	c := newCluster(t, 3, ca, DefaultTimeouts())
	leader := c.leader()
	f := follower(c, leader)
	report := ReportNode{Node: NodeInfo{Name: f.id, Address: string(f.trans.LocalAddr()), Role: RoleVoter, APIServerHealthy: true}}
	if err := f.Forward(report, 5*time.Second); err != nil {
		t.Fatalf("forward own report: %v", err)
	}
	waitFor(t, "the report to replicate back to the follower", func() bool {
		n, ok := f.State().Nodes[f.id]
		return ok && n.APIServerHealthy && f.State().APIServerEverHealthy
	})

	// A node may only speak for itself, and only with reports.
	lie := ReportNode{Node: NodeInfo{Name: leader.id, Role: RoleVoter}}
	if err := f.Forward(lie, 5*time.Second); err == nil || !strings.Contains(err.Error(), "certificate is for") {
		t.Fatalf("report about another node: got %v, want refusal naming the certificate", err)
	}
	if err := f.Forward(SetPools{Pools: []Pool{{Name: "x", Ranges: []string{"198.51.100.0/24"}}}}, 5*time.Second); err == nil || !strings.Contains(err.Error(), "may not be forwarded") {
		t.Fatalf("forwarded SetPools: got %v, want refusal", err)
	}
	if _, ok := leader.State().Pools["x"]; ok {
		t.Fatal("refused SetPools was applied")
	}
	// On the leader, Forward is Apply.
	if err := leader.Forward(ReportNode{Node: NodeInfo{Name: leader.id, Role: RoleVoter}}, 5*time.Second); err != nil {
		t.Fatalf("forward on the leader: %v", err)
	}
}

func TestJoinThroughAFollowerAddsANonvoter(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	c := newCluster(t, 3, ca, DefaultTimeouts())
	leader := c.leader()
	c.apply(allocation(1))
	f := follower(c, leader)
	w := c.add(Config{NodeID: "w1", BindAddr: freeAddr(t), DataDir: filepath.Join(t.TempDir(), "w1"),
		TLS: ca.tlsConfig(t, "w1"), Timeouts: DefaultTimeouts(), Logger: testLogger()})
	// Asking a follower works: it points at the leader and Join follows.
	if err := w.Join(string(f.trans.LocalAddr()), 5*time.Second); err != nil {
		t.Fatalf("join via follower: %v", err)
	}
	c.converged([]*Node{w}, c.apply(allocation(2)).State())
	servers, err := leader.Servers()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, s := range servers {
		if s.ID == "w1" {
			found = true
			if s.Suffrage != SuffrageNonvoter {
				t.Fatalf("w1 joined as %s, want nonvoter", s.Suffrage)
			}
		}
	}
	if !found {
		t.Fatalf("w1 not in configuration %v", servers)
	}
	// A worker can forward its own report once it knows the leader.
	waitFor(t, "the worker to learn the leader", func() bool { id, _ := w.Leader(); return id != "" })
	if err := w.Forward(ReportNode{Node: NodeInfo{Name: "w1", Role: RoleNonvoter}}, 5*time.Second); err != nil {
		t.Fatalf("worker report: %v", err)
	}
}

func TestJoinWithSomeoneElsesNameIsRefused(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	c := newCluster(t, 3, ca, DefaultTimeouts())
	leader := c.leader()
	// The certificate says "w2", the node claims to be "w1".
	w := c.add(Config{NodeID: "w1", BindAddr: freeAddr(t), DataDir: filepath.Join(t.TempDir(), "w1"),
		TLS: ca.tlsConfig(t, "w2"), Timeouts: DefaultTimeouts(), Logger: testLogger()})
	err := w.Join(string(leader.trans.LocalAddr()), 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), `certificate is for "w2"`) {
		t.Fatalf("join under another name: got %v", err)
	}
	servers, _ := leader.Servers()
	for _, s := range servers {
		if s.ID == "w1" {
			t.Fatal("w1 was added despite the name mismatch")
		}
	}
}

func TestForwardWithoutLeader(t *testing.T) {
	c := newCluster(t, 3, nil, DefaultTimeouts())
	leader := c.leader()
	f := follower(c, leader)
	for _, n := range c.running() {
		if n != f {
			c.kill(n.id)
		}
	}
	waitFor(t, "the lone follower to forget the leader", func() bool { id, _ := f.Leader(); return id == "" })
	err := f.Forward(ReportNode{Node: NodeInfo{Name: f.id, Role: RoleVoter}}, time.Second)
	if err == nil {
		t.Fatal("forward without a leader succeeded")
	}
}

func TestPeerContactsTrackLiveFollowers(t *testing.T) {
	c := newCluster(t, 3, nil, DefaultTimeouts())
	leader := c.leader()
	servers, err := leader.Servers()
	if err != nil {
		t.Fatal(err)
	}
	var dead string
	for _, n := range c.running() {
		if n != leader {
			dead = n.id
			break
		}
	}
	waitFor(t, "the leader to hear from both followers", func() bool {
		pc := leader.PeerContacts(servers)
		return len(pc) == 2 && time.Since(pc[dead]) < time.Second
	})
	c.kill(dead)
	time.Sleep(500 * time.Millisecond)
	pc := leader.PeerContacts(servers)
	if time.Since(pc[dead]) < 400*time.Millisecond {
		t.Fatalf("killed follower %s still counts as heard %s ago", dead, time.Since(pc[dead]))
	}
	for id, at := range pc {
		if id != dead && time.Since(at) > 400*time.Millisecond {
			t.Fatalf("live follower %s last heard %s ago", id, time.Since(at))
		}
	}
}

func TestReadIndexIsTheLeadersCommitIndex(t *testing.T) {
	c := newCluster(t, 3, nil, DefaultTimeouts())
	leader := c.leader()
	for i := range 5 {
		c.apply(allocation(i))
	}
	f := follower(c, leader)
	idx, err := f.ReadIndex(5 * time.Second)
	if err != nil {
		t.Fatalf("follower ReadIndex: %v", err)
	}
	if want := leader.raft.CommitIndex(); idx < want {
		t.Fatalf("follower ReadIndex %d, leader committed %d", idx, want)
	}
	var st State
	waitFor(t, "the follower's state to cover the read index", func() bool {
		st = f.State()
		return f.Covers(st.AppliedIndex, idx)
	})
	if _, ok := st.Allocations[allocation(4).Allocation.Service]; !ok {
		t.Fatal("follower reached the read index without the last allocation")
	}
	lidx, err := leader.ReadIndex(5 * time.Second)
	if err != nil || lidx < idx {
		t.Fatalf("leader ReadIndex %d, %v; want >= %d", lidx, err, idx)
	}
	// Without a leader there is no index to trust.
	for _, n := range c.running() {
		if n != f {
			c.kill(n.id)
		}
	}
	waitFor(t, "the follower to lose its leader", func() bool { id, _ := f.Leader(); return id == "" })
	if _, err := f.ReadIndex(time.Second); err == nil {
		t.Fatal("ReadIndex without a leader succeeded")
	}
}
