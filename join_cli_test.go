package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// TestBootstrapThenJoinControlPlane forms a cluster the way docs/install-kubeadm.md
// does: cp1 with --bootstrap, then cp2 and cp3 with --join and --control-plane.
// Each joins as a nonvoter; the leader holds cp2 until cp3 has caught up too
// (two voters would be worse than one), then promotes both, and `raftvip members
// list` shows three voters.
func TestBootstrapThenJoinControlPlane(t *testing.T) {
	ta := newTLSAgents(t, "rv-join")
	dir, sock := ta.dir, ta.socket
	first := ta.start("cp1", "cp1", "--bootstrap")
	if leader, _ := waitAgreement(t, ta.procs, ""); leader != "cp1" {
		t.Fatalf("bootstrap node follows %s", leader)
	}
	cp1 := ta.raft["cp1"]
	ta.start("cp2", "cp2", "--join="+cp1, "--control-plane")
	suffrage := func(name string) map[string]string {
		_, list, _ := membersJSON(t, sock(name))
		out := map[string]string{}
		for _, m := range list.Members {
			out[m.ID] = m.Suffrage
		}
		return out
	}
	waitUntil(t, dir, "cp2 to join as a nonvoter", func() bool { return suffrage("cp1")["cp2"] == raftstore.SuffrageNonvoter })
	// cp2 is held: longer than the promotion's stable period, it stays a nonvoter.
	time.Sleep(3 * time.Second)
	if got := suffrage("cp1"); got["cp2"] != raftstore.SuffrageNonvoter {
		t.Fatalf("cp2 promoted alone: %v", got)
	}
	// The leader's status says why cp2 waits.
	st, err := getStatus(first.status)
	if err != nil {
		t.Fatal(err)
	}
	var held string
	for _, s := range st.Servers {
		if s.ID == "cp2" {
			held = s.Promotion
		}
	}
	if !strings.HasPrefix(held, raftstore.PromotionWaiting+": ") || !strings.Contains(held, "even count") {
		t.Fatalf("cp2's promotion in the leader's status: %q, want it waiting for an odd count", held)
	}
	if code, out := run(t, nil, "status", "--addr", first.status); code != 0 || !strings.Contains(out, "nonvoter (waiting: cp2 is caught up, held") {
		t.Fatalf("raftvip status does not show the held promotion: exit %d\n%s", code, out)
	}
	ta.start("cp3", "cp3", "--join="+cp1, "--join="+ta.raft["cp2"], "--control-plane")
	waitUntil(t, dir, "three voters", func() bool {
		got := suffrage("cp3")
		return len(got) == 3 && got["cp1"] == raftstore.SuffrageVoter && got["cp2"] == raftstore.SuffrageVoter && got["cp3"] == raftstore.SuffrageVoter
	})
	code, out := run(t, nil, "members", "list", "--admin-socket", sock("cp2"))
	if code != 0 || strings.Count(out, " voter ") != 3 {
		t.Fatalf("members list: exit %d\n%s", code, out)
	}
	// Each side logs the change once (the joiner when its join loop next looks).
	logged := func(name, line string) int {
		b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
		return strings.Count(string(b), line)
	}
	for _, name := range []string{"cp2", "cp3"} {
		waitUntil(t, dir, name+" to log its promotion", func() bool { return logged(name, "promoted to voter by the leader") == 1 })
	}
	if got := logged("cp1", "promoted a nonvoter to voter"); got != 2 {
		t.Fatalf("cp1 logged %d promotions, want 2", got)
	}
}

// waitUntil polls cond for up to 30 s and fails with every agent log in dir.
func waitUntil(t *testing.T, dir, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
			var all strings.Builder
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				fmt.Fprintf(&all, "== %s\n%s\n", filepath.Base(l), b)
			}
			t.Fatalf("timed out waiting for %s\n%s", what, all.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestManifestPodForBootstrapAndJoin runs the manifest commands of
// docs/install-kubeadm.md sections 1 and 2: the flags reach the agent's
// arguments unchanged.
func TestManifestPodForBootstrapAndJoin(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := writeCA(t, dir)
	tls := []string{"--tls-ca-cert", caCert, "--tls-ca-key", caKey}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--node-name", "cp1", "--interface", "eth0", "--advertise-address", "10.0.0.11",
			"--bootstrap", "--control-plane-vip", "10.0.0.100"},
			[]string{"--bootstrap"}},
		{[]string{"--node-name", "cp2", "--interface", "eth0", "--advertise-address", "10.0.0.12",
			"--join", "10.0.0.11:7950", "--control-plane", "--control-plane-vip", "10.0.0.100"},
			[]string{"--join=10.0.0.11:7950", "--control-plane"}},
		{[]string{"--node-name", "cp3", "--interface", "eth0", "--advertise-address", "10.0.0.13",
			"--join", "10.0.0.11:7950", "--join", "10.0.0.12:7950", "--control-plane", "--control-plane-vip", "10.0.0.100"},
			[]string{"--join=10.0.0.11:7950", "--join=10.0.0.12:7950", "--control-plane"}},
	} {
		code, out := run(t, nil, append(append([]string{"manifest", "pod"}, tc.args...), tls...)...)
		if code != 0 {
			t.Fatalf("manifest pod %v: exit %d\n%s", tc.args, code, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("manifest pod %v lacks %q:\n%s", tc.args, w, out)
			}
		}
		if strings.Contains(out, "--peer") {
			t.Errorf("manifest pod %v lists --peer:\n%s", tc.args, out)
		}
	}
}

// TestPermanentlyRefusedJoinerExits: a node that asks to join under the
// leader's own name can never be let in until its flags change, so the agent
// stops with one error naming the refusal instead of asking forever; the
// cluster is untouched.
func TestPermanentlyRefusedJoinerExits(t *testing.T) {
	ta := newTLSAgents(t, "rv-refused")
	cp1 := ta.start("cp1", "cp1", "--bootstrap")
	waitAgreement(t, []*agentProc{cp1}, "")

	done := make(chan struct{})
	var code int
	var out string
	go func() {
		defer close(done)
		code, out = run(t, nil, ta.args("cp1", "impostor", freePort(t), freePort(t), "--join="+ta.raft["cp1"], "--control-plane")...)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the refused joiner still runs after a minute")
	}
	if code == 0 || !strings.Contains(out, "refused this node's join for good (leader_name)") {
		t.Fatalf("refused joiner: exit %d, want an error naming leader_name:\n%s", code, out)
	}
	st, err := getStatus(cp1.status)
	if err != nil || st.Leader.ID != "cp1" || len(st.Servers) != 1 {
		t.Fatalf("the cluster after the refusal: leader %q, servers %+v, err %v", st.Leader.ID, st.Servers, err)
	}
}
