package main

import (
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/raftvip/raftvip/raftstore"
)

// TestReplaceDeadControlPlaneNode replaces dead control-plane machines the two
// ways docs/operations.md describes, with real agents, TLS and stores:
//   - under a new name: cp3 dies for good, `raftvip members remove cp3`, and a
//     new machine cp4 joins with --join --control-plane and is promoted;
//   - under the same name: cp2 dies, a new machine named cp2 (empty data dir,
//     another address) starts with the same flags; the leader removes the old
//     cp2 and adds the new one, which gets the state and is promoted.
//
// After each, three voters run and agree on one leader.
func TestReplaceDeadControlPlaneNode(t *testing.T) {
	ta := newTLSAgents(t, "rv-replace")
	dir := ta.dir
	procs := map[string]*agentProc{} // the live machine of each name
	start := func(name, data string, extra ...string) *agentProc {
		a := ta.start(name, data, extra...)
		procs[name] = a
		return a
	}
	running := func() []*agentProc {
		var out []*agentProc
		for _, a := range procs {
			out = append(out, a)
		}
		return out
	}
	voters := func(of *agentProc) []string {
		st, err := getStatus(of.status)
		if err != nil {
			return nil
		}
		var out []string
		for _, s := range st.Servers {
			if s.Suffrage == raftstore.SuffrageVoter {
				out = append(out, s.ID)
			}
		}
		slices.Sort(out)
		return out
	}
	cp1 := start("cp1", "cp1", "--bootstrap")
	waitAgreement(t, running(), "")
	join := "--join=" + ta.raft["cp1"]
	start("cp2", "cp2", join, "--control-plane")
	start("cp3", "cp3", join, "--control-plane")
	waitUntil(t, dir, "three voters", func() bool { return slices.Equal(voters(cp1), []string{"cp1", "cp2", "cp3"}) })

	// A new machine under a new name.
	stopAgent(t, procs["cp3"], syscall.SIGKILL)
	delete(procs, "cp3")
	if code, out := run(t, nil, "members", "remove", "--admin-socket", ta.socket("cp1"), "cp3"); code != 0 || !strings.Contains(out, "removed cp3") {
		t.Fatalf("members remove cp3: exit %d\n%s", code, out)
	}
	start("cp4", "cp4", join, "--control-plane")
	waitUntil(t, dir, "cp4 promoted in cp3's place", func() bool { return slices.Equal(voters(cp1), []string{"cp1", "cp2", "cp4"}) })
	waitAgreement(t, running(), "")

	// A new machine under the same name: empty data dir, another address.
	old := procs["cp2"]
	stopAgent(t, old, syscall.SIGKILL)
	start("cp2", "cp2-new", join, "--control-plane")
	waitUntil(t, dir, "the new cp2 promoted", func() bool {
		st, err := getStatus(cp1.status)
		if err != nil {
			return false
		}
		for _, s := range st.Servers {
			if s.ID == "cp2" {
				return s.Suffrage == raftstore.SuffrageVoter && s.Address == ta.raft["cp2"]
			}
		}
		return false
	})
	if got := voters(cp1); !slices.Equal(got, []string{"cp1", "cp2", "cp4"}) {
		t.Fatalf("voters after replacing cp2: %v", got)
	}
	waitAgreement(t, running(), "")
	logged := false
	for _, a := range running() {
		b, _ := os.ReadFile(a.log)
		logged = logged || strings.Contains(string(b), "removed a member that came back with an empty data dir")
	}
	if !logged {
		t.Fatal("no leader logged the re-add of the new cp2")
	}
}
