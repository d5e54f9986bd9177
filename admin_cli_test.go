package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// The tests here drive `raftvip members`, `raftvip snapshot save` and `raftvip
// recover` against real agents on loopback with mutual TLS, exactly as the
// commands in docs/operations.md.

const testPool = "web=198.51.100.100-198.51.100.150"

// adminDir holds the agents' admin sockets, data dirs and logs.
type adminEnv struct {
	dir            string
	caCert, caKey  string
	agents         []*agentProc
	byName         map[string]*agentProc
	leader, follow string
}

func (e *adminEnv) socket(name string) string { return filepath.Join(e.dir, name+".sock") }

// startAdminEnv starts cp1..cp3 with TLS, a pool and an admin socket each, and
// waits until the leader's pool is committed.
func startAdminEnv(t *testing.T) *adminEnv {
	t.Helper()
	// Unix socket paths are short; t.TempDir can be long.
	dir, err := os.MkdirTemp("", "rv-admin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &adminEnv{dir: dir, byName: map[string]*agentProc{}}
	e.caCert, e.caKey = writeCA(t, dir)
	e.agents = startLoopbackAgents(t, dir, func(name string) []string {
		return []string{"--tls-ca-cert=" + e.caCert, "--tls-ca-key=" + e.caKey, "--pool=" + testPool, "--admin-socket=" + e.socket(name)}
	})
	for _, a := range e.agents {
		e.byName[a.name] = a
	}
	e.leader, _ = waitAgreement(t, e.agents, "")
	for _, a := range e.agents {
		if a.name != e.leader {
			e.follow = a.name
		}
	}
	waitPools(t, e.byName[e.leader])
	return e
}

// waitPools waits until the agent's state holds the test pool.
func waitPools(t *testing.T, a *agentProc) raftstore.State {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := getState(a.status)
		if err == nil && len(st.Pools) == 1 {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(a.log)
			t.Fatalf("%s never committed the pool: %+v %v\n%s", a.name, st.Pools, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getState(base string) (raftstore.State, error) {
	var st raftstore.State
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(base + "/state")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// stopAgent ends a with sig and waits until it has exited.
func stopAgent(t *testing.T, a *agentProc, sig syscall.Signal) {
	t.Helper()
	if err := a.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for syscall.Kill(a.cmd.Process.Pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not exit after %v", a.name, sig)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// flagValue reads --name=value from the arguments a was started with.
func flagValue(a *agentProc, name string) string {
	for _, arg := range a.cmd.Args {
		if v, ok := strings.CutPrefix(arg, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// startBootstrap starts an agent named name on dataDir with --bootstrap (what
// docs/operations.md says to do after a recovery) and waits until it leads
// alone.
func (e *adminEnv) startBootstrap(t *testing.T, name, dataDir string, raftPort int) *agentProc {
	t.Helper()
	sp := freePort(t)
	a := &agentProc{name: name, status: fmt.Sprintf("http://127.0.0.1:%d", sp), log: filepath.Join(e.dir, name+"-recovered.log")}
	startAgent(t, a, []string{"agent", "--node-name=" + name, "--advertise-address=127.0.0.1",
		fmt.Sprintf("--raft-port=%d", raftPort), fmt.Sprintf("--status-address=127.0.0.1:%d", sp),
		"--data-dir=" + dataDir, "--apiserver-health-url=", "--bootstrap",
		"--tls-ca-cert=" + e.caCert, "--tls-ca-key=" + e.caKey, "--pool=" + testPool, "--admin-socket=" + e.socket(name+"-r")})
	t.Cleanup(func() {
		if a.cmd.ProcessState == nil {
			a.cmd.Process.Kill()
		}
	})
	leader, _ := waitAgreement(t, []*agentProc{a}, "")
	if leader != name {
		t.Fatalf("recovered agent %s follows %s", name, leader)
	}
	st, err := getStatus(a.status)
	if err != nil || len(st.Servers) != 1 || st.Servers[0].ID != name || st.Servers[0].Suffrage != raftstore.SuffrageVoter {
		t.Fatalf("recovered configuration: %+v %v", st.Servers, err)
	}
	return a
}

func membersJSON(t *testing.T, socket string) (int, raftstore.MemberList, string) {
	t.Helper()
	code, out := run(t, nil, "members", "list", "--admin-socket", socket, "-o", "json")
	var list raftstore.MemberList
	if i := strings.IndexByte(out, '{'); i >= 0 {
		_ = json.NewDecoder(strings.NewReader(out[i:])).Decode(&list)
	}
	return code, list, out
}

// TestMembersListAndRemoveThroughTheAdminSocket: a follower's socket lists the
// three voters as the leader sees them; a SIGTERM'd voter stays a member; its
// removal leaves two voters that keep a leader; bad input gets one error each.
func TestMembersListAndRemoveThroughTheAdminSocket(t *testing.T) {
	e := startAdminEnv(t)
	sock := e.socket(e.follow)
	code, out := run(t, nil, "members", "list", "--admin-socket", sock)
	if code != 0 || strings.Count(out, " voter ") != 3 || !strings.Contains(out, "LAST CONTACT") {
		t.Fatalf("members list: exit %d\n%s", code, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, e.leader+" ") && !strings.Contains(line, "*") {
			t.Fatalf("the leader's row is not marked:\n%s", out)
		}
	}
	code, list, out := membersJSON(t, sock)
	if code != 0 || !list.FromLeader || list.AnsweredBy != e.leader || len(list.Members) != 3 {
		t.Fatalf("members list -o json: exit %d\n%s", code, out)
	}

	for _, bad := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"members", "remove", "--admin-socket", sock}, 2, "exactly one member name"},
		{[]string{"members", "remove", "--admin-socket", sock, "cp1", "cp2"}, 2, "exactly one member name"},
		{[]string{"members", "remove", "--admin-socket", sock, "nobody"}, 1, `"nobody": not a member (members: cp1, cp2, cp3)`},
		{[]string{"members", "list", "--admin-socket", sock, "-o", "yaml"}, 2, "want table or json"},
		{[]string{"members", "list", "--admin-socket", filepath.Join(e.dir, "none.sock")}, 1, "does not exist"},
	} {
		if code, out := run(t, nil, bad.args...); code != bad.code || !strings.Contains(out, bad.want) {
			t.Errorf("%v: exit %d (want %d)\n%s", bad.args, code, bad.code, out)
		}
	}

	var victim *agentProc
	for _, a := range e.agents {
		if a.name != e.leader && a.name != e.follow {
			victim = a
		}
	}
	stopAgent(t, victim, syscall.SIGTERM)
	if _, list, out := membersJSON(t, sock); len(list.Members) != 3 {
		t.Fatalf("a SIGTERM removed a member:\n%s", out)
	}
	code, out = run(t, nil, "members", "remove", "--admin-socket", sock, victim.name)
	if code != 0 || !strings.Contains(out, "removed "+victim.name) {
		t.Fatalf("members remove %s: exit %d\n%s", victim.name, code, out)
	}
	_, list, out = membersJSON(t, e.socket(e.leader))
	var ids []string
	for _, m := range list.Members {
		if m.Suffrage == raftstore.SuffrageVoter {
			ids = append(ids, m.ID)
		}
	}
	slices.Sort(ids)
	want := []string{e.follow, e.leader}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("voters after removing %s: %v, want %v\n%s", victim.name, ids, want, out)
	}
	waitAgreement(t, e.agents, victim.name)
	st, err := getStatus(e.byName[e.follow].status)
	if err != nil || len(st.Servers) != 2 {
		t.Fatalf("follower's configuration after the removal: %+v %v", st.Servers, err)
	}
	if !slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.HasPrefix(w, "2 voters is an even count") }) {
		t.Fatalf("two voters left and no even-count warning: %q", st.Warnings)
	}
}

// TestRecoverTheSurvivorsDataDir kills two of three voters for good. The
// survivor has no leader, so members remove is refused and points at recover;
// recover refuses while the agent runs, then rebuilds a one-voter cluster from
// the stopped agent's data dir, and the agent started on it leads with its
// state intact.
func TestRecoverTheSurvivorsDataDir(t *testing.T) {
	e := startAdminEnv(t)
	before := waitPools(t, e.byName[e.follow])
	for _, a := range e.agents {
		if a.name != e.follow {
			stopAgent(t, a, syscall.SIGKILL)
		}
	}
	surv := e.byName[e.follow]
	sock := e.socket(surv.name)
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, list, out := membersJSON(t, sock)
		if code == 1 && !list.FromLeader && len(list.Members) == 3 && strings.Contains(out, "reaches no leader") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members list on a survivor without quorum: exit %d\n%s", code, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, out := run(t, nil, "members", "remove", "--admin-socket", sock, e.leader); code != 1 || !strings.Contains(out, "raftvip recover") {
		t.Fatalf("members remove without quorum: exit %d\n%s", code, out)
	}
	dataDir := flagValue(surv, "data-dir")
	recoverArgs := []string{"recover", "--data-dir", dataDir, "--node-name", surv.name}
	if code, out := run(t, nil, recoverArgs...); code != 2 || !strings.Contains(out, "stop the agent on this node first") {
		t.Fatalf("recover while the agent runs: exit %d\n%s", code, out)
	}
	stopAgent(t, surv, syscall.SIGTERM)
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"recover", "--data-dir", filepath.Join(e.dir, "missing"), "--node-name", surv.name}, "does not exist"},
		{[]string{"recover", "--data-dir", dataDir, "--node-name", "stranger"}, `"stranger" is not in the configuration`},
		{[]string{"recover", "--data-dir", dataDir, "--node-name", surv.name, "--raft-address", "nohost"}, "--raft-address"},
		{[]string{"recover", "--data-dir", dataDir, "--node-name", surv.name, "extra"}, "takes no arguments"},
	} {
		if code, out := run(t, nil, bad.args...); code != 2 || !strings.Contains(out, bad.want) {
			t.Errorf("%v: exit %d\n%s", bad.args, code, out)
		}
	}
	code, out := run(t, nil, recoverArgs...)
	if code != 0 || !strings.Contains(out, surv.name+" at 127.0.0.1:"+flagValue(surv, "raft-port")+" is the only voter") {
		t.Fatalf("recover: exit %d\n%s", code, out)
	}
	var port int
	fmt.Sscan(flagValue(surv, "raft-port"), &port)
	a := e.startBootstrap(t, surv.name, dataDir, port)
	after, err := getState(a.status)
	if err != nil || !reflect.DeepEqual(after.Pools, before.Pools) || !reflect.DeepEqual(after.Allocations, before.Allocations) {
		t.Fatalf("state after recovery: %+v %v, want pools %+v", after, err, before.Pools)
	}
	if code, list, out := membersJSON(t, e.socket(surv.name+"-r")); code != 0 || len(list.Members) != 1 {
		t.Fatalf("members after recovery: exit %d\n%s", code, out)
	}
}

// TestSnapshotSaveAndRecoverFromIt saves a backup through a follower's socket,
// then restores it into a fresh data dir under a new name: an agent started
// there leads a one-voter cluster with the same pools and allocations.
func TestSnapshotSaveAndRecoverFromIt(t *testing.T) {
	e := startAdminEnv(t)
	before := waitPools(t, e.byName[e.follow])
	file := filepath.Join(e.dir, "backup.raftvip")
	code, out := run(t, nil, "snapshot", "save", "--admin-socket", e.socket(e.follow), file)
	if code != 0 || !strings.Contains(out, "saved "+file) || !strings.Contains(out, "3 members, 1 pools") {
		t.Fatalf("snapshot save: exit %d\n%s", code, out)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	h, _, st, err := raftstore.ReadBackup(bytes.NewReader(raw))
	if err != nil || h.Node != e.follow || !reflect.DeepEqual(st.Pools, before.Pools) {
		t.Fatalf("saved backup: %+v %v", h, err)
	}
	if left, _ := filepath.Glob(filepath.Join(e.dir, ".raftvip-backup-*")); len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
	for _, bad := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"snapshot", "save", "--admin-socket", e.socket(e.follow)}, 2, "exactly one file name"},
		{[]string{"snapshot", "save", "--admin-socket", e.socket(e.follow), filepath.Join(e.dir, "no", "such", "dir")}, 2, "backup file"},
		{[]string{"snapshot", "save", "--admin-socket", filepath.Join(e.dir, "none.sock"), file + ".2"}, 1, "does not exist"},
	} {
		if code, out := run(t, nil, bad.args...); code != bad.code || !strings.Contains(out, bad.want) {
			t.Errorf("%v: exit %d (want %d)\n%s", bad.args, code, bad.code, out)
		}
	}
	for _, a := range e.agents {
		stopAgent(t, a, syscall.SIGKILL)
	}

	corrupt := filepath.Join(e.dir, "corrupt.raftvip")
	damaged := bytes.Clone(raw)
	damaged[len(damaged)-3] ^= 1
	if err := os.WriteFile(corrupt, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(e.dir, "restored")
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"recover", "--from-snapshot", corrupt, "--data-dir", fresh, "--node-name", "cp9", "--raft-address", addr}, "sha256 differs"},
		{[]string{"recover", "--from-snapshot", filepath.Join(e.dir, "none"), "--data-dir", fresh, "--node-name", "cp9", "--raft-address", addr}, "--from-snapshot"},
		{[]string{"recover", "--from-snapshot", file, "--data-dir", fresh, "--node-name", "cp9"}, "give its raft address"},
		{[]string{"recover", "--from-snapshot", file, "--data-dir", flagValue(e.byName[e.leader], "data-dir"), "--node-name", e.leader}, "already holds raft state"},
	} {
		if code, out := run(t, nil, bad.args...); code != 2 || !strings.Contains(out, bad.want) {
			t.Errorf("%v: exit %d\n%s", bad.args, code, out)
		}
	}
	code, out = run(t, nil, "recover", "--from-snapshot", file, "--data-dir", fresh, "--node-name", "cp9", "--raft-address", addr)
	if code != 0 || !strings.Contains(out, "cp9 at "+addr+" is the only voter") || !strings.Contains(out, "members before: cp1, cp2, cp3") {
		t.Fatalf("recover --from-snapshot: exit %d\n%s", code, out)
	}
	a := e.startBootstrap(t, "cp9", fresh, port)
	after, err := getState(a.status)
	if err != nil || !reflect.DeepEqual(after.Pools, before.Pools) || !reflect.DeepEqual(after.Allocations, before.Allocations) {
		t.Fatalf("state after restore: %+v %v, want pools %+v", after, err, before.Pools)
	}
}
