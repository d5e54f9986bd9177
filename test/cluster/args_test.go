package cluster

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func flagValue(t *testing.T, args []string, name string) string {
	t.Helper()
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	t.Fatalf("flag --%s missing from %v", name, args)
	return ""
}

func TestEtcdArgs(t *testing.T) {
	args := etcdArgs("/d/etcd", 2379, 2380)
	for name, want := range map[string]string{
		"data-dir":                    "/d/etcd",
		"listen-client-urls":          "http://127.0.0.1:2379",
		"advertise-client-urls":       "http://127.0.0.1:2379",
		"listen-peer-urls":            "http://127.0.0.1:2380",
		"initial-advertise-peer-urls": "http://127.0.0.1:2380",
		"initial-cluster":             "default=http://127.0.0.1:2380",
	} {
		if got := flagValue(t, args, name); got != want {
			t.Errorf("--%s=%s, want %s", name, got, want)
		}
	}
}

func TestAPIServerArgs(t *testing.T) {
	f := controlPlaneFiles{tlsCert: "/d/tls.crt", tlsKey: "/d/tls.key", tokenFile: "/d/tokens.csv", saPublic: "/d/sa.pub", saPrivate: "/d/sa.key", apiserverCert: "/d/certs"}
	for _, tc := range []struct {
		bind, cidrs  string
		noReconciler bool
	}{
		{"127.0.0.1", "10.96.0.0/16,fd00:10:96::/112", true},
		{"::1", "fd00:10:96::/112,10.96.0.0/16", true},
		{"198.51.100.10", "10.96.0.0/16,fd00:10:96::/112", false},
		{"2001:db8:100::10", "fd00:10:96::/112,10.96.0.0/16", false},
	} {
		t.Run(tc.bind, func(t *testing.T) {
			args := apiserverArgs(tc.bind, 6443, "http://127.0.0.1:2379", f)
			if got := flagValue(t, args, "service-cluster-ip-range"); got != tc.cidrs {
				t.Errorf("service ranges %s, want %s (primary family of the bind address)", got, tc.cidrs)
			}
			if got := flagValue(t, args, "advertise-address"); got != tc.bind {
				t.Errorf("advertise address %s, want %s", got, tc.bind)
			}
			if got := slices.Contains(args, "--endpoint-reconciler-type=none"); got != tc.noReconciler {
				t.Errorf("endpoint reconciler off = %v, want %v", got, tc.noReconciler)
			}
			for name, want := range map[string]string{
				"etcd-servers": "http://127.0.0.1:2379", "secure-port": "6443", "bind-address": tc.bind,
				"token-auth-file": f.tokenFile, "authorization-mode": "Node,RBAC",
				"tls-cert-file": f.tlsCert, "tls-private-key-file": f.tlsKey,
				"service-account-key-file": f.saPublic, "service-account-signing-key-file": f.saPrivate,
			} {
				if got := flagValue(t, args, name); got != want {
					t.Errorf("--%s=%s, want %s", name, got, want)
				}
			}
		})
	}
}

func TestKCMArgs(t *testing.T) {
	args := kcmArgs("/d/admin.kubeconfig", []string{"endpointslice-controller", "namespace-controller"}, 10257, "/d/kcm")
	for name, want := range map[string]string{
		"kubeconfig": "/d/admin.kubeconfig", "controllers": "endpointslice-controller,namespace-controller",
		"leader-elect": "false", "use-service-account-credentials": "false", "allocate-node-cidrs": "false",
		"secure-port": "10257", "bind-address": "127.0.0.1", "cert-dir": "/d/kcm",
	} {
		if got := flagValue(t, args, name); got != want {
			t.Errorf("--%s=%s, want %s", name, got, want)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.BindAddress != "127.0.0.1" || !slices.Equal(o.Controllers, DefaultControllers) {
		t.Fatalf("defaults %+v", o)
	}
	o, err = Options{Controllers: []string{"namespace-controller"}, BindAddress: "::1"}.withDefaults()
	if err != nil || o.BindAddress != "::1" || !slices.Equal(o.Controllers, []string{"namespace-controller"}) {
		t.Fatalf("explicit options changed: %+v, %v", o, err)
	}
	for name, bad := range map[string]Options{
		"netns without address": {NetNS: "lab"},
		"hostname bind":         {BindAddress: "localhost"},
		"reserved user":         {Users: []User{{Name: RaftvipUser}}},
		"empty user":            {Users: []User{{}}},
		"comma in user":         {Users: []User{{Name: "a,b"}}},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestKubeconfigRoundTrip(t *testing.T) {
	ca, err := newCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	b, err := kubeconfig("https://[2001:db8:100::10]:6443", ca.CertPEM, "secret-token")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kc")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://[2001:db8:100::10]:6443" || cfg.BearerToken != "secret-token" || string(cfg.CAData) != string(ca.CertPEM) {
		t.Fatalf("kubeconfig read back as host %q token %q CA match %v", cfg.Host, cfg.BearerToken, string(cfg.CAData) == string(ca.CertPEM))
	}
}

func TestTokenRestConfig(t *testing.T) {
	ca, err := newCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	cp := &ControlPlane{APIServerURL: "https://127.0.0.1:1", ca: ca}
	if cfg := cp.TokenRestConfig("t"); cfg.Dial != nil || cfg.BearerToken != "t" || cfg.Host != cp.APIServerURL {
		t.Fatalf("loopback config %+v", cfg)
	}
	cp.netns = "lab"
	if cp.TokenRestConfig("t").Dial == nil {
		t.Fatal("a control plane in a namespace needs a dialer into it")
	}
}
