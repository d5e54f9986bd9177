package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftvip/raftvip/daemon"
)

// writeCA writes a fresh CA certificate and key, as kubeadm's pki/ca.{crt,key}.
func writeCA(t testing.TB, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type agentProc struct {
	name   string
	status string // base URL
	cmd    *exec.Cmd
	log    string
}

func startAgent(t testing.TB, a *agentProc, args []string) {
	t.Helper()
	f, err := os.Create(a.log)
	if err != nil {
		t.Fatal(err)
	}
	a.cmd = exec.Command(agentBin, args...)
	a.cmd.Stdout, a.cmd.Stderr = f, f
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.cmd.Wait(); f.Close() }()
}

func getStatus(base string) (daemon.RaftStatus, error) {
	var st daemon.RaftStatus
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(base + "/raft/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitAgreement polls until every live agent reports the same leader and term.
func waitAgreement(t testing.TB, agents []*agentProc, exclude string) (leader string, term uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		leader, term = "", 0
		agree := true
		for _, a := range agents {
			if a.name == exclude {
				continue
			}
			st, err := getStatus(a.status)
			if err != nil || st.Leader.ID == "" || st.Leader.ID == exclude {
				agree = false
				last = fmt.Sprintf("%s: %v %+v", a.name, err, st.Leader)
				break
			}
			if leader == "" {
				leader, term = st.Leader.ID, st.Term
			} else if st.Leader.ID != leader || st.Term != term {
				agree = false
				last = fmt.Sprintf("%s sees leader %s term %d, others %s term %d", a.name, st.Leader.ID, st.Term, leader, term)
				break
			}
		}
		if agree {
			return leader, term
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, a := range agents {
		b, _ := os.ReadFile(a.log)
		t.Logf("log of %s:\n%s", a.name, b)
	}
	t.Fatalf("agents never agreed on a leader: %s", last)
	return "", 0
}

// checkNice asserts every thread of pid runs at the given nice value (--nice).
func checkNice(t *testing.T, pid, want int) {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			continue // the thread exited
		}
		// Fields after the parenthesised command name; nice is field 19 overall.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if got := fields[16]; got != fmt.Sprint(want) {
			t.Fatalf("thread %s of agent %d has nice %s, want %d", task.Name(), pid, got, want)
		}
	}
}

// startLoopbackAgents starts voters cp1..cp3 on loopback, each with extra(name)
// flags, and kills whatever still runs when the test ends.
func startLoopbackAgents(t *testing.T, dir string, extra func(name string) []string) []*agentProc {
	t.Helper()
	var agents []*agentProc
	var peers []string
	ports := map[string]int{}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("cp%d", i)
		ports[name] = freePort(t)
		peers = append(peers, fmt.Sprintf("--peer=%s=127.0.0.1:%d", name, ports[name]))
	}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("cp%d", i)
		sp := freePort(t)
		a := &agentProc{name: name, status: fmt.Sprintf("http://127.0.0.1:%d", sp), log: filepath.Join(dir, name+".log")}
		args := append([]string{"agent", "--node-name=" + name, "--advertise-address=127.0.0.1",
			fmt.Sprintf("--raft-port=%d", ports[name]), fmt.Sprintf("--status-address=127.0.0.1:%d", sp),
			"--data-dir=" + filepath.Join(dir, name), "--admin-socket=" + filepath.Join(dir, name+".sock"), "--apiserver-health-url="}, peers...)
		startAgent(t, a, append(args, extra(name)...))
		agents = append(agents, a)
	}
	t.Cleanup(func() {
		for _, a := range agents {
			if a.cmd.ProcessState == nil {
				a.cmd.Process.Kill()
			}
		}
	})
	return agents
}

func TestThreeAgentsElectAndFailOver(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := writeCA(t, dir)
	agents := startLoopbackAgents(t, dir, func(string) []string {
		return []string{"--tls-ca-cert=" + caCert, "--tls-ca-key=" + caKey, "--log-level=debug"}
	})
	leader, term := waitAgreement(t, agents, "")
	t.Logf("leader %s term %d", leader, term)
	for _, a := range agents {
		checkNice(t, a.cmd.Process.Pid, -20)
	}

	var leaderProc *agentProc
	for _, a := range agents {
		if a.name == leader {
			leaderProc = a
		}
	}
	code, out := run(t, nil, "status", "--addr", leaderProc.status)
	if code != 0 || !strings.Contains(out, "state:") || !strings.Contains(out, "Leader") || !strings.Contains(out, leader) {
		t.Fatalf("raftvip status on the leader: exit %d\n%s", code, out)
	}
	code, out = run(t, nil, "status", "--addr", leaderProc.status, "-o", "json")
	var st daemon.RaftStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Node != leader || len(st.Servers) != 3 {
		t.Fatalf("raftvip status -o json: exit %d\n%s", code, out)
	}

	// Kill the leader hard: the others elect a new one in a later term.
	if err := leaderProc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	newLeader, newTerm := waitAgreement(t, agents, leader)
	if newLeader == leader || newTerm <= term {
		t.Fatalf("after killing %s (term %d): leader %s term %d", leader, term, newLeader, newTerm)
	}

	// A status server that is gone: exit code 3 and a message naming --addr.
	code, out = run(t, nil, "status", "--addr", leaderProc.status)
	if code != 3 || !strings.Contains(out, "--addr") {
		t.Fatalf("status of a dead node: exit %d: %s", code, out)
	}

	// Stop the new leader too: the last node has no quorum, knows no leader, and
	// `raftvip status` says so with exit code 1.
	var last *agentProc
	for _, a := range agents {
		if a.name == newLeader {
			if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
		} else if a.name != leader {
			last = a
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, out = run(t, nil, "status", "--addr", last.status)
		if code == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lone node still reports a leader: exit %d\n%s", code, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(out, "(none)") || !strings.Contains(out, "knows no leader") {
		t.Fatalf("status without leader should say so:\n%s", out)
	}
}

// TestPoolFlagDriftIsReported: one voter is started with other --pool flags. The
// leader's flags are committed; whichever nodes differ from them say so in
// /raft/status (and their logs), the others do not.
func TestPoolFlagDriftIsReported(t *testing.T) {
	pools := map[string]string{"cp1": "web=198.51.100.100-198.51.100.150", "cp2": "web=198.51.100.100-198.51.100.150", "cp3": "web=198.51.100.100-198.51.100.199"}
	agents := startLoopbackAgents(t, t.TempDir(), func(name string) []string {
		return []string{"--insecure-transport", "--pool=" + pools[name]}
	})
	leader, _ := waitAgreement(t, agents, "")
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok := true
		var last string
		for _, a := range agents {
			st, err := getStatus(a.status)
			if err != nil {
				ok, last = false, err.Error()
				break
			}
			want := pools[a.name] != pools[leader]
			if st.PoolFlagsMismatch != want || (want && (len(st.Warnings) == 0 || !strings.Contains(st.Warnings[0], "--pool"))) {
				ok, last = false, fmt.Sprintf("%s: mismatch %v warnings %v, want mismatch %v (leader %s)", a.name, st.PoolFlagsMismatch, st.Warnings, want, leader)
				break
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, a := range agents {
		if pools[a.name] == pools[leader] {
			continue
		}
		for {
			b, _ := os.ReadFile(a.log)
			if strings.Contains(string(b), "pool flags differ from the committed pools") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not log the drift:\n%s", a.name, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
