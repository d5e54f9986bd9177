package raftstore

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// report forwards a node report of id, listing features when it is non-nil.
func report(n *Node, id, addr string, features []string) error {
	return n.Forward(ReportNode{Node: NodeInfo{Name: id, Address: addr, Role: RoleVoter, Commands: features}}, 5*time.Second)
}

// reportAll makes every running node report its features, as the daemon does
// on start and on every leader change.
func reportAll(t *testing.T, c *cluster) {
	t.Helper()
	for _, id := range c.order {
		n := c.node(id)
		if n == nil {
			continue
		}
		waitFor(t, id+"'s report to commit", func() bool { return report(n, id, c.cfgs[id].BindAddr, Supported()) == nil })
	}
}

// followers lists the running nodes other than l.
func followers(c *cluster, l *Node) []*Node {
	var out []*Node
	for _, n := range c.running() {
		if n != l {
			out = append(out, n)
		}
	}
	return out
}

// TestLeaderGatesNewFeaturesUntilEveryVoterReports: with real stores, a new
// command type and the new report field stay unused while a voter has not
// reported them, are used once the last voter has, and are gated again when a
// voter's requests stop carrying them (an old binary after a downgrade).
func TestLeaderGatesNewFeaturesUntilEveryVoterReports(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	c := newCluster(t, 3, ca, DefaultTimeouts())
	l := c.leader()
	if err := l.Barrier(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	fs := followers(c, l)
	gated, missing := l.Gated(TypeClusterID.String())
	if !gated || len(missing) != 2 {
		t.Fatalf("gate before any report: gated %v missing %v, want both followers", gated, missing)
	}
	if err := l.CommitClusterID(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l.Apply(SetClusterID{ID: peersClusterID(c.cfgs["n1"].Peers)}, 5*time.Second); !errors.Is(err, ErrFeatureGated) {
		t.Fatalf("direct apply of a gated type: %v, want ErrFeatureGated", err)
	}
	if err := report(l, l.id, c.cfgs[l.id].BindAddr, Supported()); err != nil {
		t.Fatal(err)
	}
	if err := report(fs[0], fs[0].id, c.cfgs[fs[0].id].BindAddr, Supported()); err != nil {
		t.Fatal(err)
	}
	if gated, missing := l.Gated(TypeClusterID.String()); !gated || !slices.Equal(missing, []string{fs[1].id}) {
		t.Fatalf("gate with one follower silent: %v %v", gated, missing)
	}
	if err := l.CommitClusterID(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	st := l.State()
	if st.ClusterID != "" || st.Nodes[l.id].Commands != nil || st.Nodes[fs[0].id].Commands != nil {
		t.Fatalf("a gated feature was written: cluster id %q, reports %+v", st.ClusterID, st.Nodes)
	}
	c.converged(c.running(), st)

	id := commitID(t, c)
	// Reports committed before the gate opened carry no list until the next one.
	reportAll(t, c)
	st = l.State()
	for _, n := range c.running() {
		if got := st.Nodes[n.id].Commands; !slices.Equal(got, Supported()) {
			t.Fatalf("%s's committed report lists %v once the gate opened", n.id, got)
		}
	}
	c.converged(c.running(), st)
	if id == "" {
		t.Fatal("no cluster id")
	}

	// fs[1] downgraded: its requests carry no features, its report no field.
	data, err := Encode(ReportNode{Node: NodeInfo{Name: fs[1].id, Address: c.cfgs[fs[1].id].BindAddr, Role: RoleVoter}})
	if err != nil {
		t.Fatal(err)
	}
	if err := fs[1].request(c.cfgs[l.id].BindAddr, forwardRequest{Op: "apply", Command: data}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if gated, missing := l.Gated(FeatureNodeCommands); !gated || !slices.Equal(missing, []string{fs[1].id}) {
		t.Fatalf("gate after a downgrade: %v %v", gated, missing)
	}
	if err := report(fs[0], fs[0].id, c.cfgs[fs[0].id].BindAddr, Supported()); err != nil {
		t.Fatal(err)
	}
	if got := l.State().Nodes[fs[0].id].Commands; got != nil {
		t.Fatalf("report field written after a voter downgraded: %v", got)
	}
}

// TestNodesHaltAtAnEntryTheyCannotDecode: with real stores, an entry of a type
// no node knows (a newer release wrote it) stops every node at that index: the
// state stays what it was before it, nothing applies after it, no snapshot is
// taken, and a restart halts again at the same index instead of skipping it.
func TestNodesHaltAtAnEntryTheyCannotDecode(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	c := newCluster(t, 3, ca, DefaultTimeouts())
	before := c.apply(SetOwner{VIP: "198.51.100.100", Node: "n1"}).State()
	l := c.leader()
	f := l.raft.Apply([]byte{FormatVersion, 200, '{', '}'}, 5*time.Second)
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	at := f.Index()
	waitFor(t, "every node to halt", func() bool {
		for _, n := range c.running() {
			if h := n.Halted(); h == nil || h.Index != at || h.Type != "unknown(200)" {
				return false
			}
		}
		return true
	})
	for _, n := range c.running() {
		st := n.State()
		if len(st.Owners) != 1 || st.AppliedIndex != at-1 {
			t.Fatalf("%s: owners %v at index %d, want the state before index %d", n.id, st.Owners, st.AppliedIndex, at)
		}
		if s := n.Status(); s.Halted == nil || s.Halted.Index != at {
			t.Fatalf("%s status halted %+v", n.id, s.Halted)
		}
		if err := n.raft.Snapshot().Error(); err == nil {
			t.Fatalf("%s took a snapshot while halted", n.id)
		}
	}
	var applyErr error
	waitFor(t, "an apply on the halted leader to be refused", func() bool {
		for _, n := range c.running() {
			if n.IsLeader() {
				applyErr = n.Apply(RemoveOwner{VIP: "198.51.100.100"}, 5*time.Second)
				return errors.Is(applyErr, ErrHalted)
			}
		}
		return false
	})
	var follower string
	for _, id := range c.order {
		if !c.node(id).IsLeader() {
			follower = id
		}
	}
	c.stop(follower)
	n := c.start(follower)
	waitFor(t, follower+" to halt again after a restart", func() bool {
		h := n.Halted()
		return h != nil && h.Index == at
	})
	if st := n.State(); !statesEqualIgnoringIndex(st, before) {
		t.Fatalf("restarted %s holds %+v, want %+v", follower, st, before)
	}
}

func statesEqualIgnoringIndex(a, b State) bool {
	a.AppliedIndex, b.AppliedIndex = 0, 0
	return statesEqual(a, b)
}
