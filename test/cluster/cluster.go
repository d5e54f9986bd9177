// Package cluster starts a real Kubernetes control plane for raftvip's tests:
// etcd, kube-apiserver and kube-controller-manager, built from the Kubernetes
// Go modules by test/k8s/build.sh and cached (see EnsureBinaries). It runs on
// loopback, or inside a lab network namespace so lab nodes reach the API at
// that namespace's address.
//
// There are no kubelets and no scheduler. Tests play the kubelet with the
// helpers in objects.go: CreateNode registers a Node, CreatePod binds a Pod to
// it and writes the status a kubelet would (Running, pod IPs, Ready), and the
// real endpointslice controller turns that into EndpointSlices:
//
//   - ready:                 CreatePod(Pod{Ready: true}) or SetPodReady(true)
//     → ready=true, serving=true, terminating=false
//   - not ready:             SetPodReady(false)
//     → ready=false, serving=false, terminating=false
//   - terminating + serving: TerminatePod on a Ready pod (graceful delete with a
//     long grace period; with no kubelet the Pod stays Terminating)
//     → ready=false, serving=true, terminating=true
//   - terminating, not serving: TerminatePod then SetPodReady(false)
//     → ready=false, serving=false, terminating=true
//   - gone:                  DeletePodNow (grace period 0) → endpoint removed
package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Identities in the static token file. AdminUser is in system:masters;
// RaftvipUser has no rights until a test binds the daemon's RBAC to it.
const (
	AdminUser   = "admin"
	RaftvipUser = "raftvip"
)

// The virtual service ranges. They only exist inside the API server's
// allocator and are never configured on any interface.
const (
	ServiceCIDRv4 = "10.96.0.0/16"
	ServiceCIDRv6 = "fd00:10:96::/112"
)

// DefaultControllers is the smallest set of controllers raftvip's tests
// lean on: EndpointSlices from Pods, garbage collection through owner
// references, namespace deletion, and the default ServiceAccount every Pod
// needs to pass admission.
var DefaultControllers = []string{
	"endpointslice-controller",
	"garbage-collector-controller",
	"namespace-controller",
	"serviceaccount-controller",
}

// How long each program may take to become ready before Start gives up. These
// are failure deadlines, not expectations.
const (
	etcdReadyTimeout      = time.Minute
	apiserverReadyTimeout = 3 * time.Minute
	kcmReadyTimeout       = 2 * time.Minute
	stopGrace             = 15 * time.Second
	pollInterval          = 100 * time.Millisecond
	logTailLines          = 60
)

// defaultServiceCIDR is the ServiceCIDR object kube-apiserver creates from
// --service-cluster-ip-range.
const defaultServiceCIDR = "kubernetes"

// Options chooses where and how the control plane runs; the zero value is a
// loopback control plane with DefaultControllers.
type Options struct {
	// DataDir holds a fresh sub-directory for data, certificates, kubeconfigs
	// and logs; empty means t.TempDir(). Removed on cleanup either way.
	DataDir string
	// BindAddress is where the API server listens and what it advertises;
	// default 127.0.0.1. Required with NetNS (that namespace's address).
	BindAddress string
	// NetNS, when set, runs all three programs inside this network namespace
	// (a name from `ip netns`), so lab nodes reach the API at BindAddress.
	// The test process reaches it too, through sockets opened in that namespace.
	NetNS string
	// NoControllerManager leaves kube-controller-manager out.
	NoControllerManager bool
	// Controllers replaces DefaultControllers.
	Controllers []string
	// ExtraSANs are added to the serving certificate (IPs or DNS names), for
	// example a control-plane VIP that clients will dial.
	ExtraSANs []string
	// Users are extra token identities; their tokens are in ControlPlane.Tokens.
	Users []User
}

// ControlPlane is a running control plane; Start stops and removes it when
// the test ends.
type ControlPlane struct {
	// Kubeconfig is the admin kubeconfig (system:masters) path.
	Kubeconfig string
	// RaftvipKubeconfig authenticates as RaftvipUser, for running the daemon
	// under its own RBAC.
	RaftvipKubeconfig string
	// Tokens maps every user in the token file to its bearer token.
	Tokens map[string]string
	// RestConfig and Client act as the admin.
	RestConfig *rest.Config
	Client     kubernetes.Interface
	// Dir holds everything the control plane writes, logs included.
	Dir string
	// APIServerURL is https://BindAddress:port.
	APIServerURL string
	// CACertFile and CAKeyFile are the CA that signed the serving certificate,
	// like kubeadm's /etc/kubernetes/pki/ca.{crt,key}.
	CACertFile string
	CAKeyFile  string
	// Binaries are the programs this control plane runs.
	Binaries Binaries

	ca        keyPair
	netns     string
	etcd      *process
	apiserver *process
	kcm       *process
	kcmPort   int
}

// Start builds (first time only) and starts etcd, kube-apiserver and, unless
// disabled, kube-controller-manager, and waits until the API server is ready
// and its dual-stack ServiceCIDR is usable. Everything stops and is removed
// when the test ends; on failure the programs' logs are dumped.
func Start(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	opts, err := opts.withDefaults()
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	bins, err := binariesOnce()
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	dir := t.TempDir()
	if opts.DataDir != "" {
		if dir, err = os.MkdirTemp(opts.DataDir, "controlplane-"); err != nil {
			t.Fatalf("control plane: %v", err)
		}
	}
	cp := newControlPlane(dir, bins, opts)
	t.Cleanup(func() { cp.shutdown(t, opts.DataDir != "") })
	if err := cp.start(t.Context(), opts); err != nil {
		t.Fatalf("control plane: %v", err)
	}
	return cp
}

func newControlPlane(dir string, bins Binaries, opts Options) *ControlPlane {
	return &ControlPlane{Dir: dir, Binaries: bins, netns: opts.NetNS, Tokens: map[string]string{}}
}

func (o Options) withDefaults() (Options, error) {
	if o.BindAddress == "" {
		if o.NetNS != "" {
			return o, fmt.Errorf("NetNS %q needs a BindAddress inside it", o.NetNS)
		}
		o.BindAddress = "127.0.0.1"
	}
	if net.ParseIP(o.BindAddress) == nil {
		return o, fmt.Errorf("BindAddress %q is not an IP address", o.BindAddress)
	}
	if len(o.Controllers) == 0 {
		o.Controllers = DefaultControllers
	}
	for _, u := range o.Users {
		if u.Name == "" || u.Name == AdminUser || u.Name == RaftvipUser || strings.ContainsAny(u.Name, ",\"\n") {
			return o, fmt.Errorf("user name %q is empty, reserved or has a comma, quote or newline", u.Name)
		}
	}
	return o, nil
}

func (cp *ControlPlane) start(ctx context.Context, opts Options) error {
	if cp.netns != "" {
		if out, err := exec.Command("ip", "-n", cp.netns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
			return fmt.Errorf("netns %q: lo up: %w: %s", cp.netns, err, out)
		}
	}
	// etcd and the controller manager stay on loopback; only the API server
	// listens where clients can reach it.
	ports, err := freePorts(cp.netns, "127.0.0.1", "127.0.0.1", opts.BindAddress, "127.0.0.1")
	if err != nil {
		return err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	cp.kcmPort = ports[3]
	cp.APIServerURL = "https://" + net.JoinHostPort(opts.BindAddress, strconv.Itoa(apiPort))

	files, err := cp.writeFiles(opts)
	if err != nil {
		return err
	}
	etcdURL := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(etcdClient))
	cp.etcd = cp.newProcess("etcd", cp.Binaries.Etcd, etcdArgs(filepath.Join(cp.Dir, "etcd"), etcdClient, etcdPeer))
	if err := cp.etcd.start(); err != nil {
		return err
	}
	if err := cp.waitEtcd(ctx, etcdURL); err != nil {
		return err
	}
	cp.apiserver = cp.newProcess("kube-apiserver", cp.Binaries.APIServer, apiserverArgs(opts.BindAddress, apiPort, etcdURL, files))
	if err := cp.startAPIServer(ctx); err != nil {
		return err
	}
	if opts.NoControllerManager {
		return nil
	}
	cp.kcm = cp.newProcess("kube-controller-manager", cp.Binaries.ControllerManager,
		kcmArgs(cp.Kubeconfig, opts.Controllers, cp.kcmPort, filepath.Join(cp.Dir, "kcm-certs")))
	if err := cp.kcm.start(); err != nil {
		return err
	}
	return cp.waitKCM(ctx)
}

func (cp *ControlPlane) newProcess(name, path string, args []string) *process {
	return &process{name: name, path: path, args: args, netns: cp.netns, logPath: filepath.Join(cp.Dir, name+".log")}
}

// shutdown stops the programs in reverse order, dumps their logs when the
// test failed, and removes a DataDir sub-directory (t.TempDir cleans itself).
func (cp *ControlPlane) shutdown(t testing.TB, removeDir bool) {
	for _, p := range []*process{cp.kcm, cp.apiserver, cp.etcd} {
		if p == nil {
			continue
		}
		if err := p.stop(stopGrace); err != nil {
			t.Errorf("control plane: %v", err)
		}
		if t.Failed() {
			t.Logf("---- %s log (last %d lines, full log was %s) ----\n%s", p.name, logTailLines, p.logPath, p.logTail(logTailLines))
		}
	}
	if removeDir {
		if err := os.RemoveAll(cp.Dir); err != nil {
			t.Errorf("control plane: %v", err)
		}
	}
}

// StopAPIServer kills kube-apiserver (etcd and the controller manager keep
// running), for tests of behaviour during an API outage. It is a crash, not
// a graceful stop: every connection and watch drops at once. (A SIGTERMed
// kube-apiserver keeps serving open watches until its request timeout.)
func (cp *ControlPlane) StopAPIServer(t testing.TB) {
	t.Helper()
	if err := cp.apiserver.kill(); err != nil {
		t.Fatalf("control plane: %v", err)
	}
}

// StartAPIServer starts a stopped kube-apiserver again on the same address
// and waits until it is ready.
func (cp *ControlPlane) StartAPIServer(t testing.TB) {
	t.Helper()
	if err := cp.startAPIServer(t.Context()); err != nil {
		t.Fatalf("control plane: %v", err)
	}
}

func (cp *ControlPlane) startAPIServer(ctx context.Context) error {
	if err := cp.apiserver.start(); err != nil {
		return err
	}
	return cp.waitAPIServer(ctx)
}

// TokenKubeconfig writes a kubeconfig for this API server that presents
// token, and returns its path. Tokens not in the token file (Tokens) get 401s.
func (cp *ControlPlane) TokenKubeconfig(t testing.TB, token string) string {
	t.Helper()
	path, err := cp.writeKubeconfig("token-"+strconv.FormatUint(uint64(fnv32(token)), 16), token)
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	return path
}

func (cp *ControlPlane) writeKubeconfig(name, token string) (string, error) {
	b, err := kubeconfig(cp.APIServerURL, cp.ca.CertPEM, token)
	if err != nil {
		return "", err
	}
	path := filepath.Join(cp.Dir, name+".kubeconfig")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return "", fmt.Errorf("kubeconfig: %w", err)
	}
	return path, nil
}

// fnv32 gives token kubeconfigs stable, secret-free file names.
func fnv32(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// waitFor polls check until it reports done, the deadline passes, or p exits.
func waitFor(ctx context.Context, p *process, timeout time.Duration, what string, check func(context.Context) (bool, error)) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, pollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("%w (its log is dumped below)", p.exitErr())
		}
		ok, err := check(ctx)
		if err != nil {
			last = err
		}
		return ok, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %s: %w (last error: %v)", what, err, last)
	}
	return nil
}

func (cp *ControlPlane) httpClient(insecure bool) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext:     dialer(cp.netns),
			TLSClientConfig: &tls.Config{InsecureSkipVerify: insecure}, //nolint:gosec // kcm's own self-signed loopback cert
		},
	}
}

func (cp *ControlPlane) waitEtcd(ctx context.Context, url string) error {
	c := cp.httpClient(false)
	return waitFor(ctx, cp.etcd, etcdReadyTimeout, "etcd", func(ctx context.Context) (bool, error) {
		body, err := get(ctx, c, url+"/health")
		return err == nil && strings.Contains(body, `"health":"true"`), err
	})
}

func (cp *ControlPlane) waitAPIServer(ctx context.Context) error {
	err := waitFor(ctx, cp.apiserver, apiserverReadyTimeout, "kube-apiserver /readyz", func(ctx context.Context) (bool, error) {
		_, err := cp.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil, err
	})
	if err != nil {
		return err
	}
	// Service IPs come from ServiceCIDR objects the API server creates from
	// its flags; dual-stack Services fail until the default one is Ready.
	return waitFor(ctx, cp.apiserver, apiserverReadyTimeout, "ServiceCIDR kubernetes Ready", func(ctx context.Context) (bool, error) {
		sc, err := cp.Client.NetworkingV1().ServiceCIDRs().Get(ctx, defaultServiceCIDR, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range sc.Status.Conditions {
			if c.Type == networkingv1.ServiceCIDRConditionReady && c.Status == metav1.ConditionTrue {
				return true, nil
			}
		}
		return false, fmt.Errorf("not ready: %v", sc.Status.Conditions)
	})
}

func (cp *ControlPlane) waitKCM(ctx context.Context) error {
	c := cp.httpClient(true)
	url := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cp.kcmPort)) + "/healthz"
	return waitFor(ctx, cp.kcm, kcmReadyTimeout, "kube-controller-manager /healthz", func(ctx context.Context) (bool, error) {
		body, err := get(ctx, c, url)
		return err == nil && body == "ok", err
	})
}

func get(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b), nil
}
