package kubeadm

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/lab"
)

// TestMain doubles as a node's PID 1 when the harness re-executes the binary.
func TestMain(m *testing.M) {
	if raw := os.Getenv(InitEnv); raw != "" {
		if err := RunInit(raw); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const (
	vip        = "198.51.100.100"
	endpoint   = vip + ":6443"
	raftvipRef = "localhost/raftvip:kubeadm-e2e"
	// slow bounds every wait: 2 shared cores, generous on purpose.
	slow = 10 * time.Minute
)

// harness is a lab whose namespaces run kubeadm nodes.
type harness struct {
	t       testing.TB
	lab     *lab.Lab
	nodes   []*Node
	binDir  string
	raftvip string
}

func newHarness(t testing.TB, n int) *harness {
	t.Helper()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	binDir, err := Binaries(repo)
	if err != nil {
		t.Fatal(err)
	}
	build := t.TempDir()
	pause, raftvip := filepath.Join(build, "pause"), filepath.Join(build, "raftvip")
	if err := StaticBuild(repo, "./test/kubeadm/pause", pause); err != nil {
		t.Fatal(err)
	}
	if err := StaticBuild(repo, ".", raftvip); err != nil {
		t.Fatal(err)
	}
	var tars []string
	for i, img := range ImageSet(binDir, pause, raftvip, raftvipRef) {
		p := filepath.Join(build, fmt.Sprintf("image%d.tar", i))
		if err := WriteImageTar(p, img); err != nil {
			t.Fatal(err)
		}
		tars = append(tars, p)
	}
	h := &harness{t: t, lab: lab.New(t, n, lab.WithoutIPv6()), binDir: binDir, raftvip: raftvip}
	for i := range n {
		ns := h.lab.Node(i)
		if out, err := h.lab.Exec(ns, "ip", "route", "add", "default", "via", "198.51.100.1", "dev", lab.Iface); err != nil {
			t.Fatalf("default route in %s: %v %s", ns, err, out)
		}
		dir := filepath.Join(h.lab.Dir(), fmt.Sprintf("node%d", i+1))
		node, err := StartNode(fmt.Sprintf("cp%d", i+1), ns, h.lab.NodeIP(i).String(), dir, filepath.Join(binDir, "kubelet"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				for _, f := range []string{"init.log", "containerd.log", "kubelet.log"} {
					t.Logf("%s %s:\n%s", node.Name, f, tail(filepath.Join(dir, f), 40))
				}
				for _, c := range []string{"raftvip", "etcd"} {
					logs := node.ContainerLogs(c)
					for _, f := range logs[max(0, len(logs)-2):] {
						t.Logf("%s container log %s:\n%s", node.Name, f, tail(f, 60))
					}
				}
			}
			if err := node.Stop(); err != nil {
				t.Errorf("stop %s: %v", node.Name, err)
			}
		})
		h.nodes = append(h.nodes, node)
	}
	for _, node := range h.nodes {
		if err := node.WaitContainerd(2 * time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := node.Import(tars...); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// tail returns the last lines of a log file, for failure reports.
func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// kubeadm runs kubeadm inside node i.
func (h *harness) kubeadm(i int, args ...string) (string, error) {
	return h.nodes[i].Exec(append([]string{filepath.Join(h.binDir, "kubeadm")}, args...)...)
}

// writeConfig writes node i's kubeadm config and returns its path.
func (h *harness) writeConfig(i int, k KubeadmConfig) string {
	h.t.Helper()
	p := filepath.Join(h.nodes[i].Dir, "kubeadm.yaml")
	if err := os.WriteFile(p, []byte(k.YAML()), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// raftvipManifest writes raftvip's static pod manifest into node i's
// /etc/kubernetes/manifests, with extra flags (--bootstrap or --join).
func (h *harness) raftvipManifest(i int, extra ...string) {
	h.t.Helper()
	n := h.nodes[i]
	args := append([]string{h.raftvip, "manifest", "pod", "--image", raftvipRef,
		"--node-name", n.Name, "--interface", lab.Iface, "--advertise-address", n.IP,
		"--control-plane-vip", vip,
		"--tls-ca-cert", "/etc/kubernetes/pki/ca.crt", "--tls-ca-key", "/etc/kubernetes/pki/ca.key"}, extra...)
	out, err := n.Exec(args...)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := n.Exec("mkdir", "-p", "/etc/kubernetes/manifests"); err != nil {
		h.t.Fatal(err)
	}
	cmd := n.Command("tee", "/etc/kubernetes/manifests/raftvip.yaml")
	cmd.Stdin = strings.NewReader(out)
	if b, err := cmd.CombinedOutput(); err != nil {
		h.t.Fatalf("write raftvip manifest on %s: %v %s", n.Name, err, b)
	}
}

// initFirst runs kubeadm init on node 0 and returns the time from its start
// to the API server answering through the VIP.
func (h *harness) initFirst() time.Duration {
	h.t.Helper()
	n := h.nodes[0]
	cfg := h.writeConfig(0, KubeadmConfig{Name: n.Name, IP: n.IP, Endpoint: endpoint, Token: token, CertificateKey: certKey})
	if _, err := h.kubeadm(0, "init", "phase", "certs", "ca", "--config", cfg); err != nil {
		h.t.Fatal(err)
	}
	h.raftvipManifest(0, "--bootstrap")
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := h.kubeadm(0, "init", "--config", cfg, "--upload-certs")
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), slow)
	defer cancel()
	answered, err := h.waitVIP(ctx)
	if err != nil {
		h.t.Fatalf("API server never answered through the VIP: %v (kubeadm init: %v)", err, drain(done))
	}
	select {
	case err := <-done:
		if err != nil {
			h.t.Fatal(err)
		}
	case <-ctx.Done():
		h.t.Fatalf("kubeadm init did not finish in %s", slow)
	}
	return answered.Sub(start)
}

// drain returns the error of a finished command, or nil if still running.
func drain(done chan error) error {
	select {
	case err := <-done:
		return err
	default:
		return nil
	}
}

// waitVIP probes https://VIP:6443/livez from the client namespace until the
// API server answers with any HTTP status, and returns when it did. A probe
// starts every 100 ms without waiting for the one before: a connection whose
// SYN went to the old holder waits out TCP's one-second retransmission, and
// would measure that instead of the VIP's move.
func (h *harness) waitVIP(ctx context.Context) (time.Time, error) {
	// A new connection per probe: a kept-alive one to the old holder would
	// hang until the timeout too.
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       h.lab.Dialer(h.lab.Client()),
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // only reachability is measured
	}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answered := make(chan time.Time, 1)
	// last is the latest probe's error, for the failure message.
	var (
		mu   sync.Mutex
		last error
	)
	failed := func(err error) { mu.Lock(); last = err; mu.Unlock() }
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+endpoint+"/livez", nil)
			if err != nil {
				failed(err)
				return
			}
			resp, err := c.Do(req)
			if err != nil {
				failed(err)
				return
			}
			resp.Body.Close()
			select {
			case answered <- time.Now():
			default:
			}
		}()
		if err := h.crashLooping(); err != nil {
			return time.Time{}, err
		}
		select {
		case at := <-answered:
			return at, nil
		case <-ctx.Done():
			mu.Lock()
			defer mu.Unlock()
			return time.Time{}, fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// crashLoops is how many restarts of a raftvip container end a wait early:
// the VIP will not come, and the last log says why.
const crashLoops = 3

// crashLooping returns an error with the last log of a raftvip container the
// kubelet has restarted crashLoops times.
func (h *harness) crashLooping() error {
	for _, n := range h.nodes {
		logs := n.ContainerLogs("raftvip")
		if len(logs) > 0 && restartOf(logs[len(logs)-1]) >= crashLoops {
			return fmt.Errorf("raftvip on %s crash-loops: %s", n.Name, tail(logs[len(logs)-1], 20))
		}
	}
	return nil
}

// kubectl runs kubectl from the client namespace with node 0's admin.conf,
// whose server is the VIP.
func (h *harness) kubectl(args ...string) (string, error) {
	admin := filepath.Join(h.nodes[0].Dir, "fs/etc/upper/kubernetes/admin.conf")
	return h.lab.Exec(h.lab.Client(), append([]string{"kubectl", "--kubeconfig", admin, "--request-timeout", "10s"}, args...)...)
}
