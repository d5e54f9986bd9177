package cluster

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestControlPlane runs one real control plane through what raftvip's tests
// need from it: dual-stack LoadBalancer Services, EndpointSlices driven by
// faked Pod status, garbage collection, namespace deletion, token
// identities under RBAC, and an API server outage.
func TestControlPlane(t *testing.T) {
	cp := Start(t, Options{Users: []User{{Name: "viewer", Groups: []string{"viewers", "auditors"}}}})

	t.Run("version", func(t *testing.T) {
		v, err := cp.Client.Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		if v.GitVersion != K8sVersion {
			t.Fatalf("server version %q, want %q", v.GitVersion, K8sVersion)
		}
	})
	t.Run("endpointslices", func(t *testing.T) { testEndpointSlices(t, cp) })
	t.Run("garbage collector", func(t *testing.T) { testGarbageCollector(t, cp) })
	t.Run("namespace deletion", func(t *testing.T) { testNamespaceDeletion(t, cp) })
	t.Run("tokens", func(t *testing.T) { testTokens(t, cp) })
	t.Run("apiserver outage", func(t *testing.T) { testOutage(t, cp) })
}

func dualStackLB(t *testing.T, cp *ControlPlane, ns, name string, selector map[string]string) *corev1.Service {
	t.Helper()
	policy := corev1.IPFamilyPolicyRequireDualStack
	svc, err := cp.Client.CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Type:           corev1.ServiceTypeLoadBalancer,
			IPFamilyPolicy: &policy,
			Selector:       selector,
			Ports:          []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create dual-stack service: %v", err)
	}
	return svc
}

func testEndpointSlices(t *testing.T, cp *ControlPlane) {
	const ns, v4, v6 = "eps", "10.244.1.5", "fd00:10:244:1::5"
	cp.CreateNamespace(t, ns)
	svc := dualStackLB(t, cp, ns, "web", map[string]string{"app": "web"})
	if len(svc.Spec.ClusterIPs) != 2 {
		t.Fatalf("dual-stack service got cluster IPs %v, want one per family", svc.Spec.ClusterIPs)
	}
	_, v4Range, _ := net.ParseCIDR(ServiceCIDRv4)
	_, v6Range, _ := net.ParseCIDR(ServiceCIDRv6)
	if ip0, ip1 := net.ParseIP(svc.Spec.ClusterIPs[0]), net.ParseIP(svc.Spec.ClusterIPs[1]); !v4Range.Contains(ip0) || !v6Range.Contains(ip1) {
		t.Fatalf("cluster IPs %v not in %s and %s", svc.Spec.ClusterIPs, ServiceCIDRv4, ServiceCIDRv6)
	}

	cp.CreateNode(t, "node-a", "198.51.100.11", "2001:db8:100::11")
	cp.CreatePod(t, Pod{Namespace: ns, Name: "web-1", Node: "node-a", IPs: []string{v4, v6}, Labels: map[string]string{"app": "web"}, Ready: true})

	ready := EndpointState{Ready: true, Serving: true}
	slices := cp.WaitForEndpointSlices(t, ns, "web", EndpointIs(v4, ready))
	cp.WaitForEndpointSlices(t, ns, "web", EndpointIs(v6, ready))
	for _, s := range slices {
		if s.Labels["endpointslice.kubernetes.io/managed-by"] != "endpointslice-controller.k8s.io" {
			t.Fatalf("slice %s managed by %q, want the real endpointslice controller", s.Name, s.Labels["endpointslice.kubernetes.io/managed-by"])
		}
		for _, ep := range s.Endpoints {
			if ep.NodeName == nil || *ep.NodeName != "node-a" {
				t.Fatalf("endpoint %v on node %v, want node-a", ep.Addresses, ep.NodeName)
			}
		}
	}

	cp.SetPodReady(t, ns, "web-1", false)
	cp.WaitForEndpointSlices(t, ns, "web", EndpointIs(v4, EndpointState{}))

	cp.SetPodReady(t, ns, "web-1", true)
	cp.WaitForEndpointSlices(t, ns, "web", EndpointIs(v4, ready))

	cp.TerminatePod(t, ns, "web-1")
	cp.WaitForEndpointSlices(t, ns, "web", EndpointIs(v4, EndpointState{Serving: true, Terminating: true}))

	cp.SetPodReady(t, ns, "web-1", false)
	cp.WaitForEndpointSlices(t, ns, "web", EndpointIs(v6, EndpointState{Terminating: true}))

	cp.DeletePodNow(t, ns, "web-1")
	cp.WaitForEndpointSlices(t, ns, "web", EndpointGone(v4))
	cp.WaitForEndpointSlices(t, ns, "web", EndpointGone(v6))
}

func testGarbageCollector(t *testing.T, cp *ControlPlane) {
	const ns = "gc"
	cp.CreateNamespace(t, ns)
	cms := cp.Client.CoreV1().ConfigMaps(ns)
	owner, err := cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID}
	if _, err := cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dependent", OwnerReferences: []metav1.OwnerReference{ref}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "bystander"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(t.Context(), owner.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "configmap gc/dependent", func() error {
		_, err := cms.Get(t.Context(), "dependent", metav1.GetOptions{})
		return err
	})
	if _, err := cms.Get(t.Context(), "bystander", metav1.GetOptions{}); err != nil {
		t.Fatalf("configmap without owner was touched: %v", err)
	}
}

func testNamespaceDeletion(t *testing.T, cp *ControlPlane) {
	const ns = "doomed"
	cp.CreateNamespace(t, ns)
	dualStackLB(t, cp, ns, "svc", map[string]string{"app": "x"})
	if err := cp.Client.CoreV1().Namespaces().Delete(t.Context(), ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "namespace doomed", func() error {
		_, err := cp.Client.CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{})
		return err
	})
}

func testTokens(t *testing.T, cp *ControlPlane) {
	raftvip := clientFromKubeconfig(t, cp.RaftvipKubeconfig)
	review, err := raftvip.AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("whoami as raftvip: %v", err)
	}
	if got := review.Status.UserInfo.Username; got != RaftvipUser {
		t.Fatalf("raftvip kubeconfig authenticates as %q", got)
	}
	if _, err := raftvip.CoreV1().Services("").List(t.Context(), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("raftvip listing services without RBAC: err %v, want forbidden", err)
	}
	grantServiceReader(t, cp, RaftvipUser)
	eventually(t, "raftvip may list services", func() (bool, error) {
		_, err := raftvip.CoreV1().Services("").List(t.Context(), metav1.ListOptions{})
		return err == nil, err
	})

	viewer := clientFromKubeconfig(t, cp.TokenKubeconfig(t, cp.Tokens["viewer"]))
	review, err = viewer.AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("whoami as viewer: %v", err)
	}
	if u := review.Status.UserInfo; u.Username != "viewer" || !slices.Contains(u.Groups, "viewers") || !slices.Contains(u.Groups, "auditors") {
		t.Fatalf("viewer token authenticates as %+v", u)
	}

	stranger := clientFromKubeconfig(t, cp.TokenKubeconfig(t, "not-a-known-token"))
	if _, err := stranger.CoreV1().Services("").List(t.Context(), metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Fatalf("unknown token: err %v, want unauthorized", err)
	}
}

func grantServiceReader(t *testing.T, cp *ControlPlane, user string) {
	t.Helper()
	rbac := cp.Client.RbacV1()
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "service-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "list", "watch"}}},
	}
	if _, err := rbac.ClusterRoles().Create(t.Context(), role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "service-reader-" + user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if _, err := rbac.ClusterRoleBindings().Create(t.Context(), binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func testOutage(t *testing.T, cp *ControlPlane) {
	const ns = "outage"
	cp.CreateNamespace(t, ns)
	cp.StopAPIServer(t)
	if _, err := cp.Client.CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{}); err == nil {
		t.Fatal("API answered while kube-apiserver was stopped")
	} else if !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("during outage: %v, want connection refused", err)
	}
	cp.StartAPIServer(t)
	if _, err := cp.Client.CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace created before the outage: %v", err)
	}
}

func clientFromKubeconfig(t *testing.T, path string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// eventually polls cond until it holds, failing the test with cond's last
// error after waitTimeout (a failure deadline, not a speed expectation).
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(t.Context(), pollInterval, waitTimeout, true, func(context.Context) (bool, error) {
		ok, err := cond()
		last = err
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last error: %v)", what, err, last)
	}
}

// waitGone waits until get reports NotFound.
func waitGone(t *testing.T, what string, get func() error) {
	t.Helper()
	eventually(t, what+" gone", func() (bool, error) {
		err := get()
		return apierrors.IsNotFound(err), err
	})
}

// TestControlPlaneIPv6Loopback starts on ::1 without a controller manager:
// IPv6 becomes the primary service family.
func TestControlPlaneIPv6Loopback(t *testing.T) {
	cp := Start(t, Options{BindAddress: "::1", NoControllerManager: true})
	if !strings.HasPrefix(cp.APIServerURL, "https://[::1]:") {
		t.Fatalf("APIServerURL %s", cp.APIServerURL)
	}
	cp.CreateNamespace(t, "v6")
	svc := dualStackLB(t, cp, "v6", "web", nil)
	if got := svc.Spec.ClusterIPs; len(got) != 2 || net.ParseIP(got[0]).To4() != nil || net.ParseIP(got[1]).To4() == nil {
		t.Fatalf("cluster IPs %v for families %v", got, svc.Spec.IPFamilies)
	}
	if _, err := cp.Client.CoreV1().ServiceAccounts("v6").Get(t.Context(), "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("CreateNamespace must provide the default ServiceAccount without the controller: %v", err)
	}
}
