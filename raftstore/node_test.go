package raftstore

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestOpenValidatesConfig(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	ok := Config{NodeID: "n1", BindAddr: addr, DataDir: dir, Peers: []Peer{{ID: "n1", Address: addr}}}
	cases := map[string]struct {
		mut  func(*Config)
		want string
	}{
		"no node ID":       {func(c *Config) { c.NodeID = "" }, "empty node ID"},
		"no bind address":  {func(c *Config) { c.BindAddr = "" }, "empty bind address"},
		"no data dir":      {func(c *Config) { c.DataDir = "" }, "empty data dir"},
		"peers lack self":  {func(c *Config) { c.Peers = []Peer{{ID: "n2", Address: "127.0.0.1:1"}} }, `do not include this node "n1"`},
		"duplicate peer":   {func(c *Config) { c.Peers = append(c.Peers, Peer{ID: "n1", Address: "127.0.0.1:2"}) }, `"n1" listed twice`},
		"duplicate addr":   {func(c *Config) { c.Peers = append(c.Peers, Peer{ID: "n2", Address: addr}) }, "listed twice"},
		"empty peer field": {func(c *Config) { c.Peers = append(c.Peers, Peer{ID: "n2"}) }, "empty ID or address"},
		"lease > heartbeat": {func(c *Config) {
			c.Timeouts = Timeouts{Heartbeat: 100 * time.Millisecond, LeaderLease: 200 * time.Millisecond}
		}, "LeaderLeaseTimeout"},
		"wildcard bind, no advertise": {func(c *Config) { c.BindAddr = "0.0.0.0:0" }, "not dialable"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			cfg.Peers = slices.Clone(ok.Peers)
			tc.mut(&cfg)
			n, err := Open(cfg)
			if err == nil {
				n.Shutdown(time.Second)
				t.Fatal("Open accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestTimeoutsDefaults(t *testing.T) {
	d := DefaultTimeouts()
	if d.LeaderLease > d.Heartbeat || d.Election < d.Heartbeat {
		t.Fatalf("defaults violate raft's constraints: %+v", d)
	}
	if got := (Timeouts{}).withDefaults(); got != d {
		t.Fatalf("zero Timeouts = %+v, want defaults %+v", got, d)
	}
	// A shorter heartbeat alone scales the leader-loss timeout with it and
	// must not leave the default lease above that.
	got := (Timeouts{Heartbeat: 50 * time.Millisecond, Election: 50 * time.Millisecond}).withDefaults()
	if got.LeaderLoss != 25*time.Millisecond || got.LeaderLease != 25*time.Millisecond {
		t.Fatalf("leader loss %s, lease %s: want both 25ms, half the 50ms heartbeat", got.LeaderLoss, got.LeaderLease)
	}
	// A long lease alone pulls the leader-loss timeout up to it, never below.
	got = (Timeouts{Heartbeat: time.Second, LeaderLease: 800 * time.Millisecond}).withDefaults()
	if got.LeaderLoss != 800*time.Millisecond {
		t.Fatalf("leader loss %s, want the 800ms lease", got.LeaderLoss)
	}
	custom := Timeouts{Heartbeat: time.Second, Election: 2 * time.Second, LeaderLoss: 700 * time.Millisecond, LeaderLease: 500 * time.Millisecond, Commit: time.Millisecond,
		SnapshotInterval: time.Minute, SnapshotThreshold: 5, TrailingLogs: 6}
	if got := custom.withDefaults(); got != custom {
		t.Fatalf("explicit values overridden: %+v", got)
	}
}

func TestOpenRefusesLockedDataDir(t *testing.T) {
	c := newCluster(t, 1, nil, DefaultTimeouts())
	cfg := c.cfgs["n1"]
	cfg.BindAddr = freeAddr(t)
	_, err := Open(cfg)
	if err == nil || !strings.Contains(err.Error(), "locked by another process") || !strings.Contains(err.Error(), "raft.db") {
		t.Fatalf("second Open on the same data dir: %v", err)
	}
}

func TestNodeAPI(t *testing.T) {
	c := newCluster(t, 3, newTestCA(t, "ca"), DefaultTimeouts())
	l := c.leader()
	var f *Node
	for _, n := range c.running() {
		if n != l {
			f = n
			break
		}
	}

	t.Run("apply", func(t *testing.T) {
		if err := f.Apply(RemoveNode{Name: "x"}, time.Second); !errors.Is(err, ErrNotLeader) {
			t.Errorf("follower Apply = %v, want ErrNotLeader", err)
		}
		if err := l.Apply(RemoveNode{}, time.Second); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("invalid Apply = %v, want ErrInvalidCommand", err)
		}
		if err := l.Apply(SetOwner{VIP: "198.51.100.1", Node: l.id}, 5*time.Second); err != nil {
			t.Errorf("leader Apply = %v", err)
		}
	})

	t.Run("changed", func(t *testing.T) {
		c.apply(SetOwner{VIP: "198.51.100.2", Node: l.id})
		// The documented pattern: take Changed, re-read State, wait.
		deadline := time.After(waitTimeout)
		for {
			ch := f.Changed()
			if _, ok := f.State().Owners["198.51.100.2"]; ok {
				break
			}
			select {
			case <-ch:
			case <-deadline:
				t.Fatal("follower never saw the replicated command")
			}
		}
	})

	t.Run("verify leader", func(t *testing.T) {
		if err := l.VerifyLeader(); err != nil {
			t.Errorf("leader VerifyLeader = %v", err)
		}
		if err := f.VerifyLeader(); !errors.Is(err, ErrNotLeader) {
			t.Errorf("follower VerifyLeader = %v, want ErrNotLeader", err)
		}
	})

	t.Run("status", func(t *testing.T) {
		st := l.Status()
		if st.Node != l.id || st.State != "Leader" || st.Leader.ID != l.id || st.LastContactMs != 0 {
			t.Errorf("leader status = %+v", st)
		}
		if st.Term == 0 || st.CommitIndex == 0 || st.AppliedIndex == 0 || st.LastLogIndex < st.CommitIndex {
			t.Errorf("leader indexes = %+v", st)
		}
		if len(st.Servers) != 3 || st.Servers[0].Suffrage != SuffrageVoter {
			t.Errorf("servers = %+v", st.Servers)
		}
		waitFor(t, "the follower to hear from the leader", func() bool {
			fs := f.Status()
			return fs.State == "Follower" && fs.Leader.ID == l.id && fs.LastContactMs >= 0 && fs.Leader.Address != ""
		})
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{`"node"`, `"state"`, `"leader":{"id"`, `"address"`, `"term"`, `"last_log_index"`,
			`"commit_index"`, `"applied_index"`, `"last_contact_ms"`, `"servers":[{"id"`, `"suffrage":"voter"`, `"last_snapshot_index"`} {
			if !strings.Contains(string(b), key) {
				t.Errorf("status JSON lacks %s: %s", key, b)
			}
		}
	})

	t.Run("last contact", func(t *testing.T) {
		if since := time.Since(l.LastContact()); since > time.Second {
			t.Errorf("leader LastContact %s ago, want now", since)
		}
		waitFor(t, "follower last contact", func() bool { return !f.LastContact().IsZero() })
	})

	t.Run("snapshot", func(t *testing.T) {
		if err := l.Snapshot(); err != nil {
			t.Fatal(err)
		}
		if err := l.Snapshot(); err != nil {
			t.Fatalf("snapshot with nothing new = %v, want nil", err)
		}
		if l.Status().LastSnapshotIndex == 0 {
			t.Fatal("no snapshot index after Snapshot")
		}
	})

	t.Run("membership", func(t *testing.T) {
		if err := f.AddNonvoter("w1", "127.0.0.1:1"); !errors.Is(err, ErrNotLeader) {
			t.Errorf("follower AddNonvoter = %v", err)
		}
		if err := l.AddNonvoter("", "127.0.0.1:1"); err == nil {
			t.Error("empty ID accepted")
		}
		for i := 0; i < 2; i++ {
			if err := l.AddNonvoter("w1", "127.0.0.1:1"); err != nil {
				t.Fatalf("AddNonvoter #%d: %v", i+1, err)
			}
		}
		servers, err := l.Servers()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(servers, Server{ID: "w1", Address: "127.0.0.1:1", Suffrage: SuffrageNonvoter}) || len(servers) != 4 {
			t.Fatalf("servers after AddNonvoter = %+v", servers)
		}
		// An existing voter stays a voter.
		if err := l.AddNonvoter(f.id, string(f.trans.LocalAddr())); err != nil {
			t.Fatal(err)
		}
		if err := l.RemoveServer("w1"); err != nil {
			t.Fatal(err)
		}
		if err := l.RemoveServer("never-there"); err != nil {
			t.Fatalf("removing an unknown server = %v, want nil", err)
		}
		servers, _ = l.Servers()
		if len(servers) != 3 || slices.ContainsFunc(servers, func(s Server) bool { return s.Suffrage != SuffrageVoter }) {
			t.Fatalf("servers after RemoveServer = %+v", servers)
		}
	})

	t.Run("transfer errors", func(t *testing.T) {
		if err := l.TransferLeadership("nobody"); err == nil || !strings.Contains(err.Error(), "not a cluster member") {
			t.Errorf("unknown target: %v", err)
		}
		if err := l.TransferLeadership(l.id); err == nil || !strings.Contains(err.Error(), "this node") {
			t.Errorf("self target: %v", err)
		}
		if err := f.TransferLeadership(""); !errors.Is(err, ErrNotLeader) {
			t.Errorf("follower transfer: %v", err)
		}
	})

	t.Run("collectors", func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		for _, col := range l.Collectors() {
			if err := reg.Register(col); err != nil {
				t.Fatal(err)
			}
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.Metric {
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
				for _, lp := range m.Label {
					if lp.GetName() == "state" && mf.GetName() == "raftvip_raft_state" {
						got[mf.GetName()+"/"+lp.GetValue()] = v
					}
				}
				got[mf.GetName()] += v
			}
		}
		checks := map[string]func(float64) bool{
			"raftvip_raft_state/Leader":           func(v float64) bool { return v == 1 },
			"raftvip_raft_state/Follower":         func(v float64) bool { return v == 0 },
			"raftvip_raft_term":                   func(v float64) bool { return v >= 2 },
			"raftvip_raft_leader_changes_total":   func(v float64) bool { return v >= 1 },
			"raftvip_raft_apply_duration_seconds": func(v float64) bool { return v >= 1 },
			"raftvip_raft_commit_index":           func(v float64) bool { return v > 0 },
			"raftvip_raft_applied_index":          func(v float64) bool { return v > 0 },
			"raftvip_fsm_owners":                  func(v float64) bool { return v == 2 },
			"raftvip_fsm_pools":                   func(v float64) bool { return v == 0 },
			"raftvip_fsm_rejected_commands":       func(v float64) bool { return v == 0 },
		}
		for name, ok := range checks {
			v, present := got[name]
			if !present || !ok(v) {
				t.Errorf("%s = %v (present %v)", name, v, present)
			}
		}
	})
}

func TestShutdownIsIdempotentAndReportsShutdown(t *testing.T) {
	c := newCluster(t, 1, nil, DefaultTimeouts())
	n := c.leader()
	c.mu.Lock()
	delete(c.nodes, n.id)
	c.mu.Unlock()
	if err := n.Shutdown(0); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(time.Second); err != nil {
		t.Fatalf("second Shutdown = %v", err)
	}
	if st := n.Status(); st.State != "Shutdown" || st.Node != n.id {
		t.Fatalf("status after shutdown = %+v", st)
	}
	if err := n.Apply(RemoveNode{Name: "x"}, time.Second); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Apply after shutdown = %v", err)
	}
	if got := recvBool(t, n.LeadershipChanges()); !got {
		t.Fatal("first leadership change of a single voter should be true")
	}
	if got := recvBool(t, n.LeadershipChanges()); got {
		t.Fatal("shutdown of a leader should deliver false")
	}
	// The data dir is released: a new node opens it and is not bootstrapped.
	again := c.start(n.id)
	if again.bootstrapped {
		t.Fatal("reopened node bootstrapped")
	}
	waitFor(t, "the single voter to lead again", again.IsLeader)
}

func TestSingleJoinerWaitsWithoutPeers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "w1")
	n, err := Open(Config{NodeID: "w1", BindAddr: freeAddr(t), DataDir: dir, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(time.Second)
	if n.bootstrapped {
		t.Fatal("joiner bootstrapped")
	}
	servers, err := n.Servers()
	if err != nil || len(servers) != 0 {
		t.Fatalf("joiner servers = %v, %v", servers, err)
	}
	if n.IsLeader() {
		t.Fatal("joiner leads")
	}
}

// TestRejectedEntryIsRejectedEverywhere writes an invalid entry that bypasses
// Encode: the leader gets the FSM's error as the response and every replica
// refuses it the same way and applies on (an entry of a newer release halts
// instead: TestNodesHaltAtAnEntryTheyCannotDecode).
func TestRejectedEntryIsRejectedEverywhere(t *testing.T) {
	c := newCluster(t, 3, nil, DefaultTimeouts())
	var f interface{ Response() any }
	waitFor(t, "the raw entry to commit", func() bool {
		l := c.leader()
		af := l.raft.Apply(append([]byte{FormatVersion, byte(TypeRemoveNode)}, `{"name":""}`...), time.Second)
		if af.Error() != nil {
			return false
		}
		f = af
		return true
	})
	err, ok := f.Response().(error)
	if !ok || !errors.Is(err, ErrInvalidCommand) || !strings.Contains(err.Error(), "empty node name") {
		t.Fatalf("response = %#v", f.Response())
	}
	want := c.apply(SetOwner{VIP: "198.51.100.1", Node: "n1"}).State()
	c.converged(c.running(), want)
	for _, n := range c.running() {
		if n.fsm.Rejected() != 1 {
			t.Errorf("%s rejected %d entries, want 1", n.id, n.fsm.Rejected())
		}
	}
}

func TestApplyTimesOutWithoutQuorum(t *testing.T) {
	// A lease long enough that the leader is still leader while we wait.
	tm := Timeouts{Heartbeat: time.Second, Election: time.Second, LeaderLease: time.Second}
	c := newCluster(t, 3, nil, tm)
	l := c.apply(SetOwner{VIP: "198.51.100.1", Node: "n1"})
	for _, n := range others(c, l) {
		c.kill(n.id)
	}
	err := l.Apply(SetOwner{VIP: "198.51.100.1", Node: "n2"}, 50*time.Millisecond)
	if !errors.Is(err, ErrApplyTimeout) {
		t.Fatalf("Apply without quorum = %v, want ErrApplyTimeout", err)
	}
	if got := l.State().Owners["198.51.100.1"].Node; got != "n1" {
		t.Fatalf("uncommitted command applied: owner %s", got)
	}
}

func TestCoversSkipsEntriesThatNeverReachTheFSM(t *testing.T) {
	c := newCluster(t, 1, nil, Timeouts{})
	n := c.leader()
	c.apply(RemoveNode{Name: "ghost"})
	before := n.State().AppliedIndex
	if err := n.raft.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatalf("barrier: %v", err)
	}
	barrier := n.raft.LastIndex()
	if barrier <= before {
		t.Fatalf("barrier at %d, not after the state's %d", barrier, before)
	}
	if !n.Covers(before, barrier) {
		t.Errorf("a barrier made a copy at %d stale for %d", before, barrier)
	}
	c.apply(RemoveNode{Name: "ghost"})
	cmd := n.raft.LastIndex()
	waitFor(t, "the FSM to apply the command", func() bool { return n.State().AppliedIndex >= cmd })
	if n.Covers(before, cmd) {
		t.Errorf("a copy at %d covers %d although a command lies between", before, cmd)
	}
	if !n.Covers(cmd, cmd) {
		t.Errorf("a copy at %d does not cover itself", cmd)
	}
	if n.Covers(before, cmd+maxCoverScan+1) {
		t.Errorf("covers an index the node has not applied")
	}
}
