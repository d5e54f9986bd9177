// Package k8s is the black-box end-to-end test of raftvip's LoadBalancer Services:
// a real control plane (test/cluster) in a netns lab's client namespace, three real
// raftvip agents in lab nodes announcing on their eth0 as the "raftvip" user under
// docs/rbac.yaml, and assertions made only through the Kubernetes API and the
// agents' status endpoints.
package k8s

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/cluster"
	"github.com/raftvip/raftvip/test/lab"
)

// waitLong is a failure deadline, never an expectation: a loaded 2-core machine runs
// the API server, etcd, the controller manager and three agents at once.
const waitLong = 3 * time.Minute

// repoRoot is three directories above this file.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// labNodes is the lab's size: voters on the first three nodes, workers (in the
// tests that start them) on the others.
const labNodes = 5

// voters is how many voters startAgents starts.
const voters = 3

// agent is one raftvip agent process in a lab node.
type agent struct {
	name string
	// ns is the lab node's network namespace; the status server is reached from it.
	ns       string
	raftAddr string
	args     []string
	logPath  string
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// env is a control plane plus three agents in a lab.
type env struct {
	l      *lab.Lab
	cp     *cluster.ControlPlane
	client kubernetes.Interface
	agents []*agent
	pools  []string // the --pool flags every agent got
	// tls gives the voters mutual TLS with the control plane's CA and its key,
	// as kubeadm control-plane nodes have: they issue their own certificates and
	// sign workers'. Without it they run --insecure-transport.
	tls bool
}

// startEnv starts the control plane, applies docs/rbac.yaml and starts three voters
// with the given --pool flags, running as the raftvip user.
func startEnv(t testing.TB, pools ...string) *env {
	t.Helper()
	e := startControlPlane(t, pools...)
	e.startAgents(t, nil)
	return e
}

// startControlPlane starts the control plane and applies docs/rbac.yaml; agents
// (with these --pool flags) come later with startAgents, so a test can prepare the
// cluster as another controller left it.
func startControlPlane(t testing.TB, pools ...string) *env {
	t.Helper()
	l := lab.New(t, labNodes)
	cp := cluster.Start(t, cluster.Options{NetNS: l.Client(), BindAddress: l.ClientIP().String()})
	applyRBAC(t, cp.Client)
	return &env{l: l, cp: cp, client: cp.Client, pools: pools}
}

// startAgents starts the three voters; extra, when set, adds flags to agent i.
func (e *env) startAgents(t testing.TB, extra func(i int) []string) {
	t.Helper()
	cp := e.cp
	dir := t.TempDir()
	var peers []string
	transport := []string{"--insecure-transport"}
	if e.tls {
		transport = []string{"--tls-ca-cert=" + cp.CACertFile, "--tls-ca-key=" + cp.CAKeyFile}
	}
	for i := range voters {
		peers = append(peers, fmt.Sprintf("--peer=node%d=%s", i, e.raftAddr(i)))
	}
	for i := range voters {
		a := e.newAgent(t, fmt.Sprintf("node%d", i), i, dir)
		a.args = append(a.args, "--kubeconfig="+cp.RaftvipKubeconfig)
		a.args = append(a.args, append(transport, peers...)...)
		for _, p := range e.pools {
			a.args = append(a.args, "--pool="+p)
		}
		if extra != nil {
			a.args = append(a.args, extra(i)...)
		}
		a.start(t)
		e.agents = append(e.agents, a)
	}
	t.Cleanup(func() {
		for _, a := range e.agents {
			a.stop()
			if t.Failed() {
				t.Logf("---- %s log (tail) ----\n%s", a.name, tail(a.logPath, 40))
			}
		}
	})
}

// raftAddr is the Raft address of the agent on lab node i.
func (e *env) raftAddr(i int) string {
	return net.JoinHostPort(e.l.NodeIP(i).String(), strconv.Itoa(agents.RaftPort))
}

// newAgent is the agent on lab node i with the flags every agent shares: the node's
// eth0 to announce on, its own address for Raft, files under dir.
func (e *env) newAgent(t testing.TB, name string, i int, dir string) *agent {
	a := &agent{name: name, ns: e.l.Node(i), raftAddr: e.raftAddr(i), dial: e.l.Dialer(e.l.Node(i)),
		logPath: filepath.Join(dir, name+".log")}
	a.args = []string{agents.Binary(t), "agent",
		"--node-name=" + name, "--interface=" + lab.Iface, "--advertise-address=" + e.l.NodeIP(i).String(),
		"--raft-port=" + strconv.Itoa(agents.RaftPort), fmt.Sprintf("--status-address=127.0.0.1:%d", agents.StatusPort),
		"--data-dir=" + filepath.Join(dir, name), "--admin-socket=" + filepath.Join(dir, name+".sock"),
		"--apiserver-health-url=", "--log-format=json",
	}
	return a
}

// applyRBAC creates every object in docs/rbac.yaml, so the agents run with exactly
// the rights the documentation ships.
func applyRBAC(t testing.TB, c kubernetes.Interface) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "docs", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	ctx := context.Background()
	for {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("docs/rbac.yaml: %v", err)
		}
		if onlyComments(doc) {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("docs/rbac.yaml: %v", err)
		}
		switch o := obj.(type) {
		case *rbacv1.ClusterRole:
			_, err = c.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = c.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = c.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("docs/rbac.yaml: unexpected %T", obj)
		}
		if err != nil {
			t.Fatalf("docs/rbac.yaml: create %T: %v", obj, err)
		}
	}
}

func onlyComments(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if l := bytes.TrimSpace(line); len(l) > 0 && l[0] != '#' {
			return false
		}
	}
	return true
}

func (a *agent) start(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", a.ns}, a.args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", a.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	a.mu.Lock()
	a.cmd, a.exited = cmd, exited
	a.mu.Unlock()
}

// kill sends SIGKILL and waits for the process to be gone.
func (a *agent) kill() {
	a.mu.Lock()
	cmd, exited := a.cmd, a.exited
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// stop asks for a clean shutdown, then kills after a grace period.
func (a *agent) stop() {
	a.mu.Lock()
	cmd, exited := a.cmd, a.exited
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		a.kill()
	}
}

func (a *agent) pid() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cmd.Process.Pid
}

func (a *agent) getJSON(ctx context.Context, path string, v any) error {
	body, err := a.get(ctx, path)
	if err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}

func (a *agent) get(ctx context.Context, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://127.0.0.1:%d%s", agents.StatusPort, path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	c := &http.Client{Transport: &http.Transport{DialContext: a.dial, DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s", a.name, path, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func (a *agent) status(ctx context.Context) (raftstore.Status, error) {
	var st raftstore.Status
	return st, a.getJSON(ctx, "/raft/status", &st)
}

func (a *agent) state(ctx context.Context) (raftstore.State, error) {
	var st raftstore.State
	return st, a.getJSON(ctx, "/state", &st)
}

// metric sums the samples of the Prometheus series name whose labels contain
// label (all of them when label is empty).
func (a *agent) metric(ctx context.Context, name, label string) (float64, error) {
	body, err := a.get(ctx, "/metrics")
	if err != nil {
		return 0, err
	}
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if line == "" || line[0] == '#' || i < 0 {
			continue
		}
		series := line[:i]
		if n, _, _ := strings.Cut(series, "{"); n != name || !strings.Contains(series, label) {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, nil
}

// leader waits until one running agent says it is the leader and returns it.
func (e *env) leader(t testing.TB) *agent {
	t.Helper()
	var found *agent
	poll(t, "a raft leader", func() bool {
		for _, a := range e.agents {
			if st, err := a.status(context.Background()); err == nil && st.State == "Leader" {
				found = a
				return true
			}
		}
		return false
	})
	return found
}

// poll checks cond every 100ms until it holds or waitLong passes.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
