package bgp

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/raftvip/raftvip/test/cluster"
	"github.com/raftvip/raftvip/test/lab"
)

const (
	// svcPort is the port every test Service exposes; nothing listens on it; the
	// test reads the router's RIB, not traffic.
	svcPort = 9000
	// appNS holds the test Services and Pods.
	appNS = "bgp"
	// svcPool leaves 198.51.100.100 and 2001:db8:100::100 to the control-plane VIPs.
	svcPool = "main=198.51.100.101-198.51.100.199,2001:db8:100::101-2001:db8:100::1ff"
	// advertisersReason is the reason of the leader's Event when a Service's BGP
	// advertiser set changes.
	advertisersReason = "VIPAdvertisers"
)

// TestBGPServices runs LoadBalancer Services in bgp mode against a real control
// plane in the client namespace: an ETP Cluster Service is advertised by every
// node; an ETP Local one only by the node with its ready endpoint, following the
// endpoint when its pod moves (and saying so in an Event); a SingleStack IPv6
// Service's VIP reaches the router with each node's IPv6 next hop.
func TestBGPServices(t *testing.T) {
	c := newBGPCluster(t)
	cp := cluster.Start(t, cluster.Options{NetNS: c.l.Client(), BindAddress: c.l.ClientIP().String()})
	cp.ApplyDocs(t, "rbac.yaml")
	cp.CreateNamespace(t, appNS)
	for i := range nodes {
		cp.CreateNode(t, fmt.Sprintf("node%d", i), c.l.NodeIP(i).String(), c.l.NodeIP6(i).String())
	}
	c.startAgents(t, []netip.Addr{cp4}, func(int) []string {
		return []string{"--kubeconfig=" + cp.RaftvipKubeconfig, "--namespace=kube-system", "--pool=" + svcPool}
	})
	c.await(t, c.everyVIP(all()), time.Time{})

	cp.CreatePod(t, cluster.Pod{Namespace: appNS, Name: "web", Node: c.agents[0].Name,
		IPs: []string{"10.244.0.10", "2001:db8:100::a:10"}, Labels: map[string]string{"app": "web"}, Ready: true})
	cp.CreatePod(t, cluster.Pod{Namespace: appNS, Name: "loc-a", Node: c.agents[1].Name,
		IPs: []string{"10.244.1.10"}, Labels: map[string]string{"app": "loc"}, Ready: true})
	createService(t, cp, lbService("web", false, corev1.IPv4Protocol, "web"))
	createService(t, cp, lbService("loc", true, corev1.IPv4Protocol, "loc"))
	createService(t, cp, lbService("web6", false, corev1.IPv6Protocol, "web"))
	web, loc, web6 := ingress(t, cp, "web"), ingress(t, cp, "loc"), ingress(t, cp, "web6")
	if !web.Is4() || !loc.Is4() || !web6.Is6() {
		t.Fatalf("VIP families: web %s, loc %s, web6 %s", web, loc, web6)
	}

	c.await(t, map[netip.Addr][]int{web: all(), loc: {1}, web6: all()}, time.Time{})
	leader := c.leaderIndex(t)
	c.awaitAdvertisers(t, leader, loc, []int{1})
	for i, p := range c.paths(t, web6) {
		if p.NextHop != c.l.NodeIP6(i) {
			t.Errorf("IPv6 VIP %s from node %d: next hop %s, want %s", web6, i, p.NextHop, c.l.NodeIP6(i))
		}
	}
	for i, p := range c.paths(t, web) {
		if p.NextHop != c.l.NodeIP(i) {
			t.Errorf("IPv4 VIP %s from node %d: next hop %s, want %s", web, i, p.NextHop, c.l.NodeIP(i))
		}
	}

	// The Local Service's only endpoint moves from node1 to node2.
	move := time.Now()
	cp.DeletePodNow(t, appNS, "loc-a")
	cp.CreatePod(t, cluster.Pod{Namespace: appNS, Name: "loc-b", Node: c.agents[2].Name,
		IPs: []string{"10.244.2.10"}, Labels: map[string]string{"app": "loc"}, Ready: true})
	moved := c.await(t, map[netip.Addr][]int{loc: {2}, web: all(), web6: all()}, move)
	t.Logf("Local endpoint moved node1 -> node2: router had the new advertiser set %v after the delete began", moved.Sub(move))
	c.awaitAdvertisers(t, c.leaderIndex(t), loc, []int{2})
	awaitEvent(t, cp, "loc", fmt.Sprintf("VIP %s advertised by [%s]", loc, c.agents[2].Name))
}

// lbService is a LoadBalancer Service in appNS of one IP family selecting app.
func lbService(name string, local bool, family corev1.IPFamily, app string) *corev1.Service {
	etp := corev1.ServiceExternalTrafficPolicyCluster
	if local {
		etp = corev1.ServiceExternalTrafficPolicyLocal
	}
	single := corev1.IPFamilyPolicySingleStack
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: appNS},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: etp,
			IPFamilies:            []corev1.IPFamily{family},
			IPFamilyPolicy:        &single,
			Selector:              map[string]string{"app": app},
			Ports:                 []corev1.ServicePort{{Name: "svc", Port: svcPort, Protocol: corev1.ProtocolUDP}},
		},
	}
}

func createService(t testing.TB, cp *cluster.ControlPlane, s *corev1.Service) {
	t.Helper()
	if _, err := cp.Client.CoreV1().Services(s.Namespace).Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service %s/%s: %v", s.Namespace, s.Name, err)
	}
}

// ingress waits until the Service has exactly one ingress address and returns it.
func ingress(t testing.TB, cp *cluster.ControlPlane, name string) netip.Addr {
	t.Helper()
	var out netip.Addr
	lab.Eventually(t, waitLong, "one ingress address on "+name, func() error {
		s, err := cp.Client.CoreV1().Services(appNS).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if in := s.Status.LoadBalancer.Ingress; len(in) != 1 {
			return fmt.Errorf("ingress %v", in)
		}
		out, err = netip.ParseAddr(s.Status.LoadBalancer.Ingress[0].IP)
		return err
	})
	return out
}

// awaitEvent waits until the events API holds an advertisers Event on Service
// name whose message contains substr.
func awaitEvent(t testing.TB, cp *cluster.ControlPlane, name, substr string) {
	t.Helper()
	lab.Eventually(t, waitLong, fmt.Sprintf("a %s Event on %s mentioning %q", advertisersReason, name, substr), func() error {
		list, err := cp.Client.CoreV1().Events(appNS).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		var seen []string
		for _, e := range list.Items {
			if e.InvolvedObject.Kind != "Service" || e.InvolvedObject.Name != name || e.Reason != advertisersReason {
				continue
			}
			if e.Type == corev1.EventTypeNormal && strings.Contains(e.Message, substr) {
				return nil
			}
			seen = append(seen, e.Type+": "+e.Message)
		}
		return fmt.Errorf("seen %q", seen)
	})
}
