package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestControlPlaneInNetNS runs the control plane inside a lab namespace on an
// IPv6 address, as lab nodes would reach it, and drives it from the test
// process through sockets opened in that namespace.
func TestControlPlaneInNetNS(t *testing.T) {
	const bind, vip = "2001:db8:100::10", "198.51.100.100"
	ns := newLabNetNS(t, "198.51.100.10/24", bind+"/64")
	cp := Start(t, Options{NetNS: ns, BindAddress: bind, ExtraSANs: []string{vip}})

	u, err := url.Parse(cp.APIServerURL)
	if err != nil || u.Hostname() != bind {
		t.Fatalf("APIServerURL %q (%v), want host %s", cp.APIServerURL, err, bind)
	}

	t.Run("kubernetes service is IPv6 primary", func(t *testing.T) {
		svc, err := cp.Client.CoreV1().Services("default").Get(t.Context(), "kubernetes", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if svc.Spec.ClusterIP != "fd00:10:96::1" {
			t.Fatalf("kubernetes service cluster IP %s, want fd00:10:96::1", svc.Spec.ClusterIP)
		}
		eps := cp.WaitForEndpointSlices(t, "default", "kubernetes", EndpointIs(bind, EndpointState{Ready: true, Serving: true}))
		if len(eps) == 0 {
			t.Fatal("no slices returned")
		}
	})

	t.Run("kubeconfig works from inside the namespace", func(t *testing.T) {
		cfg, err := clientcmd.BuildConfigFromFlags("", cp.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Host != cp.APIServerURL {
			t.Fatalf("kubeconfig server %s, want %s", cfg.Host, cp.APIServerURL)
		}
		cfg.Dial = dialer(ns)
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CoreV1().Namespaces().Get(t.Context(), "kube-system", metav1.GetOptions{}); err != nil {
			t.Fatalf("admin kubeconfig from the lab namespace: %v", err)
		}
	})

	t.Run("serving certificate covers extra SANs", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(cp.ca.CertPEM)
		handshake := func(serverName string) error {
			raw, err := dialer(ns)(t.Context(), "tcp", u.Host)
			if err != nil {
				t.Fatal(err)
			}
			conn := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: serverName})
			defer conn.Close()
			return conn.HandshakeContext(t.Context())
		}
		for _, name := range []string{vip, bind, "kubernetes.default.svc"} {
			if err := handshake(name); err != nil {
				t.Errorf("TLS as %s: %v", name, err)
			}
		}
		if err := handshake("203.0.113.1"); err == nil {
			t.Error("TLS as an address not in the certificate succeeded")
		}
	})

	t.Run("controllers run in the namespace", func(t *testing.T) {
		const podNS = "lab"
		cp.CreateNamespace(t, podNS)
		policy := corev1.IPFamilyPolicyPreferDualStack
		if _, err := cp.Client.CoreV1().Services(podNS).Create(t.Context(), &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "api"},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeLoadBalancer, IPFamilyPolicy: &policy,
				Selector: map[string]string{"app": "api"},
				Ports:    []corev1.ServicePort{{Port: 443}},
			},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		cp.CreateNode(t, "node-b", "198.51.100.12")
		cp.CreatePod(t, Pod{Namespace: podNS, Name: "api-1", Node: "node-b", IPs: []string{"fd00:10:244::7", "10.244.0.7"}, Labels: map[string]string{"app": "api"}, Ready: true})
		slices := cp.WaitForEndpointSlices(t, podNS, "api", EndpointIs("10.244.0.7", EndpointState{Ready: true, Serving: true}))
		cp.WaitForEndpointSlices(t, podNS, "api", EndpointIs("fd00:10:244::7", EndpointState{Ready: true, Serving: true}))
		if n := len(slices); n != 2 {
			t.Fatalf("%d slices for a dual-stack service, want one per family", n)
		}
	})
}
