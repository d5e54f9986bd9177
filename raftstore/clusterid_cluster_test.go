package raftstore

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// commitID makes whichever node leads c commit its data dir's cluster ID, as the
// daemon's leader loop does, and waits until every running node holds it.
func commitID(t *testing.T, c *cluster) string {
	t.Helper()
	reportAll(t, c)
	l := c.leader()
	if err := l.Barrier(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l.CommitClusterID(5 * time.Second); err != nil {
		t.Fatalf("commit the cluster id: %v", err)
	}
	id := l.State().ClusterID
	if id == "" {
		t.Fatal("the leader committed no cluster id")
	}
	waitFor(t, "every node to hold the cluster id", func() bool {
		for _, n := range c.running() {
			if n.State().ClusterID != id {
				return false
			}
		}
		return true
	})
	return id
}

// TestPeersAgreeOnTheClusterID: peers bootstrapped together record the same ID,
// derived from their peer list, before any leader; the first leader commits it;
// a second commit changes nothing; it survives a snapshot and a restart; a node
// that joins later records it in its own data dir.
func TestPeersAgreeOnTheClusterID(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	c := newCluster(t, 3, ca, DefaultTimeouts())
	want := peersClusterID(c.cfgs["n1"].Peers)
	for _, id := range c.order {
		if got, err := ReadClusterID(c.cfgs[id].DataDir); got != want || err != nil {
			t.Fatalf("%s's data dir records %q (%v), want %q", id, got, err, want)
		}
	}
	if got := commitID(t, c); got != want {
		t.Fatalf("committed %q, want %q", got, want)
	}
	l := c.leader()
	if err := l.CommitClusterID(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if st := l.Status(); st.ClusterID != want {
		t.Fatalf("status cluster id %q, want %q", st.ClusterID, want)
	}

	f := follower(c, l)
	if err := f.Snapshot(); err != nil {
		t.Fatal(err)
	}
	c.stop(f.id)
	g := c.start(f.id)
	waitFor(t, "the restarted node to hold the cluster id", func() bool { return g.State().ClusterID == want })

	leaderAddr := string(c.leader().trans.LocalAddr())
	w := c.add(Config{NodeID: "w1", BindAddr: freeAddr(t), DataDir: filepath.Join(t.TempDir(), "w1"),
		TLS: ca.tlsConfig(t, "w1"), Timeouts: DefaultTimeouts(), Logger: testLogger()})
	if w.ClusterID() != "" {
		t.Fatalf("a fresh node has cluster id %q", w.ClusterID())
	}
	if err := w.Join(leaderAddr, 5*time.Second); err != nil {
		t.Fatalf("join: %v", err)
	}
	waitFor(t, "the joiner to record the cluster id", func() bool {
		got, _ := ReadClusterID(c.cfgs["w1"].DataDir)
		return got == want && w.ClusterID() == want
	})

	// Status: the leader knows every member's last contact and which nonvoter it
	// promotes; a follower knows only the leader's.
	var leader *Node
	for _, n := range c.running() {
		if n.IsLeader() {
			leader = n
		}
	}
	leader.SetPromoting(func(id string) bool { return id == "w1" })
	waitFor(t, "the leader's status to show w1 promoted and heard", func() bool {
		for _, s := range leader.Status().Servers {
			if s.ID == "w1" {
				return s.Suffrage == SuffrageNonvoter && s.Promoting && s.LastContactMs >= 0 && s.LastContactMs < 1000
			}
		}
		return false
	})
	for _, s := range leader.Status().Servers {
		if s.ID != "w1" && (s.Promoting || s.LastContactMs < 0) {
			t.Errorf("leader's status of %s: %+v", s.ID, s)
		}
	}
	fs := follower(c, leader).Status()
	for _, s := range fs.Servers {
		switch {
		case s.ID == fs.Node && s.LastContactMs != 0,
			s.ID == leader.id && s.LastContactMs < 0,
			s.ID != fs.Node && s.ID != leader.id && s.LastContactMs != -1,
			s.Promoting:
			t.Errorf("follower %s's status of %s: %+v", fs.Node, s.ID, s)
		}
	}
}

// TestForeignDataDirIsRefused: a node whose data dir belongs to another cluster
// (same CA, as after a reinstall) is refused at start when that cluster answers
// at one of its addresses, and refused by the leader when it asks to join; both
// errors name the dir and both IDs. The cluster's configuration never changes.
func TestForeignDataDirIsRefused(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	c := newCluster(t, 3, ca, DefaultTimeouts())
	clusterID := commitID(t, c)

	dir := filepath.Join(t.TempDir(), "x1")
	addr := freeAddr(t)
	cfg := Config{NodeID: "x1", BindAddr: addr, DataDir: dir, Peers: []Peer{{ID: "x1", Address: addr}},
		TLS: ca.tlsConfig(t, "x1"), Timeouts: DefaultTimeouts(), Logger: testLogger()}
	other := c.add(cfg)
	waitFor(t, "the lone node to lead", other.IsLeader)
	if err := other.Barrier(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := other.CommitClusterID(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	foreignID := other.State().ClusterID
	if foreignID == "" || foreignID == clusterID {
		t.Fatalf("the lone node's cluster id %q (the cluster's is %q)", foreignID, clusterID)
	}
	c.stop("x1")

	target := string(c.node("n2").trans.LocalAddr())
	cfg.Peers = nil
	cfg.ClusterCheck = []string{freeAddr(t), target}
	n, err := Open(cfg)
	if err == nil {
		n.Shutdown(time.Second)
		t.Fatal("a foreign data dir started next to another cluster")
	}
	for _, want := range []string{"data dir " + dir, foreignID, clusterID, target} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("start error lacks %q: %v", want, err)
		}
	}
	if !errors.Is(err, ErrForeignCluster) {
		t.Errorf("start error %v is not ErrForeignCluster", err)
	}
	t.Logf("start refused: %v", err)

	// Where the cluster does not answer at start, the leader refuses the join.
	leader := c.leader()
	cfg.ClusterCheck = nil
	n = c.add(cfg)
	err = n.Join(target, 5*time.Second)
	if err == nil || !errors.Is(err, ErrForeignCluster) {
		t.Fatalf("join with a foreign data dir: %v", err)
	}
	for _, want := range []string{"data dir " + dir, foreignID, clusterID} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("join error lacks %q: %v", want, err)
		}
	}
	t.Logf("join refused: %v", err)
	servers, err := leader.Servers()
	if err != nil || len(servers) != 3 {
		t.Fatalf("configuration after the refused join: %+v %v", servers, err)
	}
}

// BenchmarkClusterCheckAtStart measures what the start-time check adds to a
// restart: probing the two other voters of a live three-voter TLS cluster (live),
// and two addresses where nothing listens (dead peers during a cold start).
func BenchmarkClusterCheckAtStart(b *testing.B) {
	ca := newTestCA(b, "cluster-ca")
	c := newCluster(b, 3, ca, DefaultTimeouts())
	l := c.leader()
	if err := l.Barrier(5 * time.Second); err != nil {
		b.Fatal(err)
	}
	if err := l.CommitClusterID(5 * time.Second); err != nil {
		b.Fatal(err)
	}
	var others []string
	for _, n := range c.running() {
		if n != l {
			others = append(others, string(n.trans.LocalAddr()))
		}
	}
	for _, tc := range []struct {
		name  string
		addrs []string
	}{
		{"live", others},
		{"dead", []string{freeAddr(b), freeAddr(b)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				start := time.Now()
				if err := l.checkClusterAt(tc.addrs); err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(start))
			}
			reportDurations(b, ds)
		})
	}
}
