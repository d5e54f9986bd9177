package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/raftvip/raftvip/daemon/assign"
	"github.com/raftvip/raftvip/daemon/ipam"
	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/watchers"
)

func TestServicesFollowerActsOnlyAfterLeadershipGain(t *testing.T) {
	node := newFakeRaft(false)
	node.setPools(t, testPoolV4)
	h := startServices(t, node, "")
	h.create(t, newLB("a"), newLB("b"))
	// The views reach the reconcile (counted) but a follower commits and writes nothing.
	waitFor(t, "both views handled", func() bool { return h.metric(t, "raftvip_kube_service_views_total", "changed") >= 2 })
	if cmds, barriers := node.commits(); len(cmds)+barriers != 0 || len(node.State().Allocations) != 0 {
		t.Fatalf("a follower committed %v", cmds)
	}
	if ips, _ := h.ingress(t, "a"); ips != nil {
		t.Fatalf("a follower wrote status %v", ips)
	}
	node.setLeader(true)
	h.waitIngress(t, "a", "198.51.100.100")
	h.waitIngress(t, "b", "198.51.100.101")
}

// A new leader (restart or failover) finds allocations committed by an earlier one:
// it rewrites status without reallocating, and releases allocations of Services that
// were deleted while nobody watched.
func TestServicesResyncKeepsCommittedAllocations(t *testing.T) {
	node := newFakeRaft(true)
	node.setPools(t, testPoolV4)
	for name, ip := range map[string]string{"a": "198.51.100.107", "gone": "198.51.100.100"} {
		node.seed(t, raftstore.Allocate{Allocation: raftstore.Allocation{
			Service: "ns/" + name, UID: "uid-" + name, Pool: "v4", IPs: []string{ip}, Ports: []string{"TCP/80"},
		}})
	}
	h := startServices(t, node, "", newLB("a"))
	h.waitIngress(t, "a", "198.51.100.107")
	waitFor(t, "the deleted Service's allocation released", func() bool { _, ok := h.alloc("gone"); return !ok })
	cmds, _ := node.commits()
	for _, c := range cmds {
		for _, sub := range c.(raftstore.Batch).Commands {
			if _, ok := sub.(raftstore.Allocate); ok {
				t.Fatalf("resync reallocated: %+v", sub)
			}
		}
	}
	if a, _ := h.alloc("a"); !slices.Equal(a.IPs, []string{"198.51.100.107"}) {
		t.Fatalf("a's allocation changed to %v", a.IPs)
	}
}

func TestServicesPoolShrinkKeepsAddressWithEvent(t *testing.T) {
	node := newFakeRaft(true)
	node.setPools(t, testPoolV4)
	h := startServices(t, node, "")
	h.create(t, newLB("a"))
	h.waitIngress(t, "a", "198.51.100.100")
	node.setPools(t, "v4=198.51.100.101-198.51.100.109")
	h.waitEvent(t, "a", watchers.ReasonOutsidePools, "198.51.100.100 is no longer in any pool")
	if a, _ := h.alloc("a"); !slices.Equal(a.IPs, []string{"198.51.100.100"}) {
		t.Fatalf("allocation after the pool shrank: %v", a.IPs)
	}
	h.waitIngress(t, "a", "198.51.100.100")
}

func TestServicesCommitFailureIsRetried(t *testing.T) {
	node := newFakeRaft(true)
	node.setPools(t, testPoolV4)
	h := startServices(t, node, "")
	// Let the barrier through first, then fail the first real commit.
	h.create(t, newLB("first"))
	h.waitIngress(t, "first", "198.51.100.100")
	node.mu.Lock()
	node.failNext = 1
	node.mu.Unlock()
	h.create(t, newLB("a"))
	h.waitIngress(t, "a", "198.51.100.101")
	node.mu.Lock()
	defer node.mu.Unlock()
	if node.failNext != 0 {
		t.Fatal("the injected failure never happened")
	}
}

func updatesFor(svcs ...*corev1.Service) []watchers.Update {
	var out []watchers.Update
	for _, svc := range svcs {
		out = append(out, watchers.Update{Key: svc.Namespace + "/" + svc.Name, View: watchers.ComputeView(svc, nil, "")})
	}
	return out
}

// reconcileDirect drives one batch through reconcile, as the watcher would.
func reconcileDirect(t *testing.T, node *fakeRaft, client *fake.Clientset, updates []watchers.Update) (*serviceController, map[string]error) {
	t.Helper()
	if node.State().LBClass == nil {
		node.seed(t, raftstore.SetLBClass{})
	}
	s, err := newServiceControllerFor(node, "", "", slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.out.Store(watchers.NewWriter(client, client, "test-node"))
	w, err := watchers.New(client, watchers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.w.Store(w)
	return s, s.reconcile(t.Context(), updates)
}

func TestServicesBurstIsFewRaftEntries(t *testing.T) {
	for _, n := range []int{300, 1200} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			node := newFakeRaft(true)
			node.setPools(t, "big=198.51.100.0/24,2001:db8:100::/112")
			client := fake.NewClientset()
			var svcs []*corev1.Service
			for i := range n {
				// Mostly IPv6: the documentation /24 holds only 254 IPv4 addresses.
				svc := newLB(fmt.Sprintf("s%04d", i))
				svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
				if i%10 == 0 {
					dualStack(corev1.IPFamilyPolicyPreferDualStack)(svc)
				}
				svcs = append(svcs, svc)
			}
			s, errs := reconcileDirect(t, node, client, updatesFor(svcs...))
			// The fake has no such Services: their status writes are skipped as for
			// Services deleted meanwhile, which is not an error.
			if len(errs) != 0 {
				t.Fatalf("%d errors, want none", len(errs))
			}
			want := (n + maxCommandsPerApply - 1) / maxCommandsPerApply
			if cmds, _ := node.commits(); len(cmds) != want {
				t.Fatalf("%d services took %d raft entries, want %d", n, len(cmds), want)
			}
			if got := metricOf(s.m.commands); got != float64(n) {
				t.Fatalf("commands counter %v, want %d", got, n)
			}
			seen := map[string]string{}
			for k, a := range node.State().Allocations {
				for _, ip := range a.IPs {
					if other, dup := seen[ip]; dup {
						t.Fatalf("%s given to %s and %s", ip, other, k)
					}
					seen[ip] = k
				}
			}
			if len(node.State().Allocations) != n {
				t.Fatalf("%d allocations, want %d", len(node.State().Allocations), n)
			}
		})
	}
}

func TestServicesBarrierOncePerTerm(t *testing.T) {
	node := newFakeRaft(true)
	node.setPools(t, testPoolV4)
	client := fake.NewClientset()
	a := updatesFor(newLB("a"))
	s, _ := reconcileDirect(t, node, client, a)
	s.reconcile(t.Context(), a)
	barriers := func() int { _, n := node.commits(); return n }
	if got := barriers(); got != 1 {
		t.Fatalf("%d barriers in one term, want 1", got)
	}
	node.setLeader(false)
	node.setLeader(true)
	s.reconcile(t.Context(), a)
	if got := barriers(); got != 2 {
		t.Fatalf("%d barriers after a new term, want 2", got)
	}
	node.mu.Lock()
	node.failNext = 1
	node.mu.Unlock()
	node.setLeader(false)
	node.setLeader(true)
	errs := s.reconcile(t.Context(), a)
	if !errors.Is(errs["ns/a"], raftstore.ErrLeadershipLost) {
		t.Fatalf("failed barrier: errors %v, want the batch failed", errs)
	}
}

func TestServicesRecreatedServiceGetsFreshAllocation(t *testing.T) {
	node := newFakeRaft(true)
	node.setPools(t, testPoolV4)
	client := fake.NewClientset()
	s, _ := reconcileDirect(t, node, client, updatesFor(newLB("a", withAnnotation(watchers.AnnotationLoadBalancerIPs, "198.51.100.105"))))
	recreated := newLB("a")
	recreated.UID = "uid-a-2"
	s.reconcile(t.Context(), updatesFor(recreated))
	a, ok := node.State().Allocations["ns/a"]
	if !ok || a.UID != "uid-a-2" || !slices.Equal(a.IPs, []string{"198.51.100.100"}) {
		t.Fatalf("re-created Service's allocation %+v, want a fresh one (lowest free address, new UID)", a)
	}
}

// metric reads a registered series by name and (for vectors) its one label value.
func (h *svcHarness) metric(t *testing.T, name, label string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func metricOf(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue() + m.GetGauge().GetValue()
}

// Only Services waiting for free addresses are retried when addresses are freed; a
// malformed or impossible request waits for its own spec or the pools to change.
func TestServicesPendingKinds(t *testing.T) {
	node := newFakeRaft(true)
	node.setPools(t, "tiny=198.51.100.100")
	client := fake.NewClientset()
	s, errs := reconcileDirect(t, node, client, updatesFor(newLB("a"), newLB("b"),
		newLB("malformed", withAnnotation(watchers.AnnotationLoadBalancerIPs, "x")),
		newLB("outside", withAnnotation(watchers.AnnotationLoadBalancerIPs, "203.0.113.1")),
		newLB("dual", dualStack(corev1.IPFamilyPolicyRequireDualStack))))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	want := map[string]bool{"ns/b": true, "ns/malformed": false, "ns/outside": false, "ns/dual": true}
	if !maps.Equal(s.pending, want) {
		t.Fatalf("pending %v, want %v (true: waits for free addresses)", s.pending, want)
	}
}

func TestConversions(t *testing.T) {
	v := &watchers.View{
		Key: "ns/a", Families: []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}, Policy: corev1.IPFamilyPolicyRequireDualStack,
		Pool: "p", RequestedIPs: []netip.Addr{netip.MustParseAddr("2001:db8:100::1")}, SharingKey: "k", Ports: []watchers.Port{{Protocol: "UDP", Port: 53}},
	}
	r := request(v)
	if !slices.Equal(r.Families, []ipam.Family{ipam.V6, ipam.V4}) || r.Policy != ipam.RequireDualStack || r.Pool != "p" || r.SharingKey != "k" ||
		r.Service != "ns/a" || len(r.RequestedIPs) != 1 || !slices.Equal(r.Ports, []ipam.Port{{Protocol: "UDP", Port: 53}}) {
		t.Fatalf("request %+v", r)
	}
	for policy, want := range map[corev1.IPFamilyPolicy]ipam.Policy{"": ipam.SingleStack, corev1.IPFamilyPolicyPreferDualStack: ipam.PreferDualStack} {
		if v.Policy = policy; request(v).Policy != want {
			t.Fatalf("policy %q became %v", policy, request(v).Policy)
		}
	}
	in := ipam.Allocation{
		Service: "ns/a", Pool: "p", SharingKey: "k", IPs: []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8:100::1")},
		Ports: []ipam.Port{{Protocol: "TCP", Port: 80}, {Protocol: "UDP", Port: 53}},
	}
	ra := raftAllocation(in, "u")
	if ra.UID != "u" || !slices.Equal(ra.IPs, []string{"198.51.100.1", "2001:db8:100::1"}) || !slices.Equal(ra.Ports, []string{"TCP/80", "UDP/53"}) {
		t.Fatalf("raft form %+v", ra)
	}
	if back := ipamAllocation(ra); !reflect.DeepEqual(back, in) {
		t.Fatalf("round trip %+v, want %+v", back, in)
	}
}

// The owners loop reads endpoints and excluded nodes through serviceSource and
// reports its moves back as Events.
func TestServicesServiceSource(t *testing.T) {
	node := newFakeRaft(false)
	var empty serviceController
	if empty.Ready() || empty.Endpoints() != nil || empty.ExcludedNodes() != nil {
		t.Fatal("a controller without an API server claims to know something")
	}
	empty.OwnersChanged([]assign.Decision{{Service: "ns/a"}}) // no writer yet: nothing to do, no panic
	local := newLB("local")
	local.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	ready, nodeName := true, "n2"
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: "local-1", Labels: map[string]string{discoveryv1.LabelServiceName: "local"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, NodeName: &nodeName, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
	excluded := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n3", Labels: map[string]string{corev1.LabelNodeExcludeBalancers: ""}}}
	h := startServices(t, node, "", local, newLB("cluster"), slice, excluded)
	waitFor(t, "caches synced", h.s.Ready)
	want := map[string]endpointInfo{
		"ns/local":   {LocalTraffic: true, EndpointNodes: []string{"n2"}, HasEndpoints: true},
		"ns/cluster": {},
	}
	if got := h.s.Endpoints(); !reflect.DeepEqual(got, want) {
		t.Fatalf("endpoints %+v, want %+v", got, want)
	}
	if got := h.s.ExcludedNodes(); !slices.Equal(got, []string{"n3"}) {
		t.Fatalf("excluded %v", got)
	}
	vip := netip.MustParseAddr("198.51.100.100")
	h.s.OwnersChanged([]assign.Decision{
		{VIP: vip, Service: "ns/cluster", SharedWith: []string{"ns/local"}, From: "n1", To: "n2", Reason: assign.ReasonOwnerDown},
		{VIP: vip, Service: "ns/local", To: "n2", Reason: assign.ReasonInitial},
		{VIP: vip, Service: "ns/cluster", From: "n2", Reason: assign.ReasonNoUsableEndpoint},
		{VIP: vip, Service: "ns/gone", From: "n2", Reason: assign.ReasonServiceRemoved},
	})
	h.waitEvent(t, "local", watchers.ReasonAnnouncer, "198.51.100.100 moved from n1 to n2: owner down")
	h.waitEvent(t, "cluster", watchers.ReasonAnnouncer, "198.51.100.100 moved from n1 to n2: owner down")
	h.waitEvent(t, "local", watchers.ReasonAnnouncer, "198.51.100.100 announced by n2 (initial)")
	h.waitEvent(t, "cluster", watchers.ReasonAnnouncer, "198.51.100.100 is not announced by any node: no usable endpoint")
}

// Every Service a BGP advertiser change touches gets one Normal Event naming each
// of its VIPs' new and old advertiser sets; control-plane VIPs (no Services) none.
func TestServicesAdvertisersChanged(t *testing.T) {
	var empty serviceController
	empty.AdvertisersChanged([]advertiserChange{{Services: []string{"ns/a"}}}) // no writer yet: nothing to do, no panic
	node := newFakeRaft(false)
	h := startServices(t, node, "", newLB("dual"), newLB("other"))
	waitFor(t, "caches synced", h.s.Ready)
	v4, v6 := netip.MustParseAddr("198.51.100.101"), netip.MustParseAddr("2001:db8:100::1")
	h.s.AdvertisersChanged([]advertiserChange{
		{VIP: netip.MustParseAddr("198.51.100.10")},
		{VIP: v4, Services: []string{"ns/dual", "ns/gone"}, From: []string{"n1"}, To: []string{"n1", "n2"}},
		{VIP: v6, Services: []string{"ns/dual"}, To: []string{"n3"}},
		{VIP: netip.MustParseAddr("198.51.100.102"), Services: []string{"ns/other"}, From: []string{"n2"}},
	})
	h.waitEvent(t, "dual", reasonAdvertisers, "VIP 198.51.100.101 advertised by [n1 n2] (was [n1]); VIP 2001:db8:100::1 advertised by [n3] (was [])")
	h.waitEvent(t, "other", reasonAdvertisers, "VIP 198.51.100.102 is not advertised by any node (was [n2])")
	list, err := h.client.CoreV1().Events("ns").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if e.Reason == reasonAdvertisers && e.Type != corev1.EventTypeNormal {
			t.Errorf("event %q on %s is %s, want Normal", e.Message, e.InvolvedObject.Name, e.Type)
		}
		if e.Reason == reasonAdvertisers && e.InvolvedObject.Name == "gone" {
			t.Errorf("event on a Service the controller does not know: %q", e.Message)
		}
	}
}

// advertiserMessages groups clauses per Service in the changes' order and skips
// VIPs no Service holds.
func TestAdvertiserMessages(t *testing.T) {
	got := advertiserMessages([]advertiserChange{
		{VIP: netip.MustParseAddr("198.51.100.10"), From: []string{"n1"}},
		{VIP: netip.MustParseAddr("198.51.100.101"), Services: []string{"ns/a", "ns/b"}, From: []string{"n1"}, To: []string{"n2"}},
		{VIP: netip.MustParseAddr("2001:db8:100::1"), Services: []string{"ns/a"}, From: []string{"n1", "n2"}},
	})
	want := map[string]string{
		"ns/a": "VIP 198.51.100.101 advertised by [n2] (was [n1]); VIP 2001:db8:100::1 is not advertised by any node (was [n1 n2])",
		"ns/b": "VIP 198.51.100.101 advertised by [n2] (was [n1])",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("messages %q, want %q", got, want)
	}
}
