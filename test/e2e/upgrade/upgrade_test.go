// Package upgrade_test upgrades a three-voter lab cluster from the previous
// release, built from its commit, to the binary under test, one node at a time,
// and rolls a half-upgraded node back: the replicated state never splits, the
// leader uses no new command type or field before the last member runs the new
// binary (a worker's included), and the control-plane VIP is never answered for by two nodes.
package upgrade_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/lab"
)

const (
	// previous is release v0.1.0 (tag v0.1.0), the release before feature
	// reports: pinned by hash, which every clone of the history has.
	previous = "4e456fac4846497788b3a9405fb744a0e25997df"
	vip4     = "198.51.100.10"
	pool     = "main=198.51.100.100-198.51.100.120"
	// newPool is the same pool with its own interface, which only the binary
	// under test can parse and v0.1.0 cannot apply (a gated field).
	newPool = pool + ";interface=" + lab.Iface
	// waitLong is a failure deadline, never an expectation.
	waitLong = 2 * time.Minute
)

// step is one restart of the rolling upgrade.
type step struct {
	node int
	new  bool // start the binary under test; false: the previous release
	what string
}

func TestRollingUpgradeAndRollback(t *testing.T) {
	old, cur := agents.Release(t, previous), agents.Binary(t)
	// node0-2 are voters, node3 a worker (a nonvoter that joined).
	l := lab.New(t, 4)
	all := agents.StartLab(t, l, agents.LabOptions{VIPs: []string{vip4}, Extra: []string{"--pool=" + pool}, Bin: old, Workers: []int{3}})
	agents.Leader(t, all, waitLong)
	capture := l.Capture(l.Client(), lab.Iface, "arp")
	spray := l.Start(l.Client(), "arping", "arping", "-q", "-i", lab.Iface, "-W", "0.05", vip4)
	converge(t, all)

	running := map[int]bool{} // node -> runs the binary under test
	for _, s := range []step{
		{2, true, "upgrade node2"},
		{2, false, "roll node2 back to the previous release"},
		{2, true, "upgrade node2 again"},
		{1, true, "upgrade node1"},
		{0, true, "upgrade node0, the last voter"},
		{3, true, "upgrade node3, the worker"},
	} {
		a := all[s.node]
		if err := a.Proc.Stop(); err != nil {
			t.Fatalf("%s: stop %s: %v", s.what, a.Name, err)
		}
		bin, flag := old, "--pool="+pool
		if s.new {
			bin, flag = cur, "--pool="+newPool
		}
		for j, arg := range a.Args {
			if strings.HasPrefix(arg, "--pool=") {
				a.Args[j] = flag
			}
		}
		a.Start(bin)
		running[s.node] = s.new
		st := converge(t, all)
		allNew := running[0] && running[1] && running[2] && running[3]
		if !allNew {
			// A member still runs v0.1.0: nothing it cannot decode was written.
			if st.ClusterID != "" {
				t.Fatalf("%s: cluster id %q committed while a member runs the previous release", s.what, st.ClusterID)
			}
			for name, n := range st.Nodes {
				if n.Commands != nil || n.Interfaces != nil {
					t.Fatalf("%s: %s's report carries fields the previous release rejects: %+v", s.what, name, n)
				}
			}
			for _, p := range st.Pools {
				if p.Interface != "" {
					t.Fatalf("%s: pool %s committed with interface %q while a member runs the previous release", s.what, p.Name, p.Interface)
				}
			}
		}
		checkSilentRejects(t, s.what, all, running)
		t.Logf("%s: states agree: %d nodes, %d pools", s.what, len(st.Nodes), len(st.Pools))
	}

	// Every member runs the new binary: the gate opens, the cluster id and the
	// pool's interface are committed and every node's report is sent again with
	// its features and interfaces.
	lab.Eventually(t, waitLong, "cluster id and full reports after the last upgrade", func() error {
		st := converge(t, all)
		if st.ClusterID == "" {
			return fmt.Errorf("no cluster id committed")
		}
		if len(st.Pools) != 1 || st.Pools["main"].Interface != lab.Iface {
			return fmt.Errorf("pools %+v, want main on %s", st.Pools, lab.Iface)
		}
		for _, a := range all {
			n := st.Nodes[a.Name]
			if n.Commands == nil || len(n.Interfaces) != 1 || n.Interfaces[0].Name != lab.Iface {
				return fmt.Errorf("%s's report: commands %v interfaces %+v", a.Name, n.Commands, n.Interfaces)
			}
		}
		return nil
	})

	spray.Kill()
	lines := capture.Stop()
	ans := lab.AnswersTo(lines, netip.MustParseAddr(vip4), l.ClientIP())
	if ans.Requests == 0 {
		t.Fatal("the client sent no ARP request for the VIP")
	}
	if len(ans.Double) > 0 {
		t.Errorf("%d of %d ARP requests for %s answered by two MACs during the upgrade; capture:\n%s",
			len(ans.Double), ans.Requests, vip4, strings.Join(lab.Mentions(lines, netip.MustParseAddr(vip4)), "\n"))
	}
	t.Logf("rolling upgrade and rollback: %d ARP requests for the VIP, %d double-answered, %d replies", ans.Requests, len(ans.Double), len(ans.Replies))
}

// converge waits until every agent agrees on the leader and has applied the
// same state, one agent holds the VIP and no new-release agent halted; it
// returns that state.
func converge(t *testing.T, all []*agents.Agent) raftstore.State {
	t.Helper()
	var agreed raftstore.State
	lab.Eventually(t, waitLong, "agents agree on the leader, the state and the VIP's holder", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var leader string
		var first []byte
		holders := 0
		for i, a := range all {
			status, err := a.Status(ctx)
			if err != nil {
				return err
			}
			if status.Leader.ID == "" || (i > 0 && status.Leader.ID != leader) {
				return fmt.Errorf("%s sees leader %q, others %q", a.Name, status.Leader.ID, leader)
			}
			leader = status.Leader.ID
			for _, v := range status.HeldVIPs {
				if v == vip4 {
					holders++
				}
			}
			st, err := a.State(ctx)
			if err != nil {
				return err
			}
			st.AppliedIndex = 0 // each node has its own; the content must match
			b, err := json.Marshal(st)
			if err != nil {
				return err
			}
			if i == 0 {
				first, agreed = b, st
			} else if string(b) != string(first) {
				return fmt.Errorf("%s's state differs from %s's:\n%s\n%s", a.Name, all[0].Name, b, first)
			}
		}
		if len(agreed.Nodes) != len(all) {
			return fmt.Errorf("%d of %d nodes' reports committed", len(agreed.Nodes), len(all))
		}
		if holders != 1 {
			return fmt.Errorf("%d agents hold %s", holders, vip4)
		}
		return nil
	})
	return agreed
}

var (
	rejectedMetric = regexp.MustCompile(`(?m)^raftvip_fsm_rejected_commands (\S+)$`)
	haltedMetric   = regexp.MustCompile(`(?m)^raftvip_fsm_halted (\S+)$`)
)

// checkSilentRejects fails the test when a previous-release agent skipped an
// entry (its FSM counts what it could not decode and carries on: a split state)
// or a new agent halted.
func checkSilentRejects(t *testing.T, what string, all []*agents.Agent, running map[int]bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i, a := range all {
		text, err := a.Metrics(ctx)
		if err != nil {
			t.Fatalf("%s: metrics of %s: %v", what, a.Name, err)
		}
		re, name := rejectedMetric, "raftvip_fsm_rejected_commands"
		if running[i] {
			re, name = haltedMetric, "raftvip_fsm_halted"
		}
		m := re.FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("%s: %s exports no %s", what, a.Name, name)
		}
		if v, err := strconv.ParseFloat(m[1], 64); err != nil || v != 0 {
			t.Fatalf("%s: %s on %s is %s, want 0\n%s", what, name, a.Name, m[1], a.Proc.Log())
		}
	}
}
