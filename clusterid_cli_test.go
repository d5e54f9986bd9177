package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// voterCount is how many voters a `raftvip members list -o json` shows.
func voterCount(list raftstore.MemberList) int {
	n := 0
	for _, m := range list.Members {
		if m.Suffrage == raftstore.SuffrageVoter {
			n++
		}
	}
	return n
}

// waitClusterID waits until a's /raft/status shows a committed cluster ID and
// returns it.
func waitClusterID(t *testing.T, a *agentProc) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := getStatus(a.status)
		if err == nil && st.ClusterID != "" {
			return st.ClusterID
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(a.log)
			t.Fatalf("%s never showed a cluster id: %v\n%s", a.name, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSIGTERMNeverRemovesAMember: the leader of three voters is stopped with
// SIGTERM and started again on its data dir; `raftvip members list` on another
// voter shows 3 voters at every poll meanwhile, and `raftvip status` shows every
// node with one cluster ID, recorded in each data dir.
func TestSIGTERMNeverRemovesAMember(t *testing.T) {
	e := startAdminEnv(t)
	id := waitClusterID(t, e.byName[e.leader])
	victim := e.byName[e.leader]
	sock := e.socket(e.follow)
	polls := 0
	check := func() {
		t.Helper()
		code, list, out := membersJSON(t, sock)
		polls++
		if len(list.Members) != 3 || voterCount(list) != 3 {
			t.Fatalf("poll %d: members list shows %d members, %d voters (exit %d):\n%s", polls, len(list.Members), voterCount(list), code, out)
		}
	}
	check()
	if err := victim.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for syscall.Kill(victim.cmd.Process.Pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not exit after SIGTERM", victim.name)
		}
		check()
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; i < 10; i++ {
		check()
		time.Sleep(50 * time.Millisecond)
	}
	args := victim.cmd.Args[1:]
	victim.log += ".restarted"
	startAgent(t, victim, args)
	waitAgreement(t, e.agents, "")
	for i := 0; i < 10; i++ {
		check()
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d polls of members list, each with 3 voters", polls)

	for _, a := range e.agents {
		code, out := run(t, nil, "status", "--addr", a.status)
		if code != 0 || !strings.Contains(out, "cluster id:") || !strings.Contains(out, id) || !strings.Contains(out, "LAST CONTACT") {
			t.Fatalf("status of %s: exit %d, want cluster id %s\n%s", a.name, code, id, out)
		}
		if a.name == e.follow {
			t.Logf("raftvip status on %s:\n%s", a.name, out)
		}
		if got, err := raftstore.ReadClusterID(flagValue(a, "data-dir")); got != id || err != nil {
			t.Fatalf("%s's data dir records %q (%v), want %q", a.name, got, err, id)
		}
	}
}

// TestForeignDataDirIsRefusedByTheAgent: a data dir from a lone --bootstrap
// cluster, started with --join to a three-voter cluster, stops the agent with one
// error naming the dir and both cluster IDs, and the cluster keeps its 3 members.
func TestForeignDataDirIsRefusedByTheAgent(t *testing.T) {
	e := startAdminEnv(t)
	id := waitClusterID(t, e.byName[e.leader])
	port := freePort(t)
	dataDir := filepath.Join(e.dir, "cp9")
	lone := e.startBootstrap(t, "cp9", dataDir, port)
	foreign := waitClusterID(t, lone)
	if foreign == id {
		t.Fatalf("two clusters share the id %s", id)
	}
	stopAgent(t, lone, syscall.SIGTERM)

	join := "127.0.0.1:" + flagValue(e.byName[e.leader], "raft-port")
	sp := freePort(t)
	a := &agentProc{name: "cp9", status: fmt.Sprintf("http://127.0.0.1:%d", sp), log: filepath.Join(e.dir, "cp9-foreign.log")}
	startAgent(t, a, []string{"agent", "--node-name=cp9", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--raft-port=%d", port), fmt.Sprintf("--status-address=127.0.0.1:%d", sp),
		"--data-dir=" + dataDir, "--apiserver-health-url=", "--join=" + join, "--control-plane",
		"--tls-ca-cert=" + e.caCert, "--tls-ca-key=" + e.caKey, "--admin-socket=" + e.socket("cp9-f")})
	t.Cleanup(func() {
		if a.cmd.ProcessState == nil {
			a.cmd.Process.Kill()
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for syscall.Kill(a.cmd.Process.Pid, 0) == nil {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(a.log)
			t.Fatalf("the agent with a foreign data dir still runs:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(a.log)
	want := fmt.Sprintf("data dir %s belongs to cluster %s, but the raftvip cluster at %s", dataDir, foreign, join)
	if !strings.Contains(string(b), want) || !strings.Contains(string(b), "is cluster "+id) {
		t.Fatalf("agent log lacks %q and %q:\n%s", want, "is cluster "+id, b)
	}
	if _, list, out := membersJSON(t, e.socket(e.follow)); len(list.Members) != 3 {
		t.Fatalf("members after the refused start:\n%s", out)
	}
}
