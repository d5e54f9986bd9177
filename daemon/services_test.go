package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/raftvip/raftvip/daemon/assign"
	"github.com/raftvip/raftvip/daemon/ipam"
	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/watchers"
)

// fakeRaft is a one-node "cluster": commands are encoded and applied to a real FSM,
// so the controller's commands go through the same validation as in production.
type fakeRaft struct {
	fsm *raftstore.FSM

	mu       sync.Mutex
	leader   bool
	term     uint64
	index    uint64
	applied  []raftstore.Command
	failNext int
}

func newFakeRaft(leader bool) *fakeRaft {
	return &fakeRaft{fsm: raftstore.NewFSM(), leader: leader, term: 1}
}

func (f *fakeRaft) IsLeader() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader
}

func (f *fakeRaft) Status() raftstore.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := raftstore.Status{State: "Follower", Term: f.term}
	if f.leader {
		st.State = "Leader"
	}
	return st
}

func (f *fakeRaft) State() raftstore.State   { return f.fsm.State() }
func (f *fakeRaft) Changed() <-chan struct{} { return f.fsm.Changed() }

func (f *fakeRaft) Apply(c raftstore.Command, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case !f.leader:
		return raftstore.ErrNotLeader
	case f.failNext > 0:
		f.failNext--
		return raftstore.ErrLeadershipLost
	}
	if err := f.commitLocked(c); err != nil {
		return err
	}
	f.applied = append(f.applied, c)
	return nil
}

// commitLocked applies c to the FSM as a committed log entry.
func (f *fakeRaft) commitLocked(c raftstore.Command) error {
	data, err := raftstore.Encode(c)
	if err != nil {
		return err
	}
	f.index++
	if err, ok := f.fsm.Apply(&raft.Log{Index: f.index, Term: f.term, Type: raft.LogCommand, Data: data}).(error); ok {
		return err
	}
	return nil
}

// seed commits c as an earlier leader (or the daemon's pool sync) would have.
func (f *fakeRaft) seed(t *testing.T, c raftstore.Command) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.commitLocked(c); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeRaft) setPools(t *testing.T, flags ...string) {
	t.Helper()
	pools, err := ipam.ParsePools(flags)
	if err != nil {
		t.Fatal(err)
	}
	f.seed(t, raftstore.SetPools{Pools: committedPools(pools)})
}

func (f *fakeRaft) setLeader(leader bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if leader && !f.leader {
		f.term++
	}
	f.leader = leader
}

// commits returns what the controller committed, barriers counted apart.
func (f *fakeRaft) commits() (cmds []raftstore.Command, barriers int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.applied {
		if r, ok := c.(raftstore.Release); ok && r.Service == barrierKey {
			barriers++
			continue
		}
		cmds = append(cmds, c)
	}
	return cmds, barriers
}

const (
	testPoolV4   = "v4=198.51.100.100-198.51.100.109"
	testPoolDual = "xdual=198.51.100.200-198.51.100.209,2001:db8:100::200-2001:db8:100::209"
)

type svcHarness struct {
	client *fake.Clientset
	node   *fakeRaft
	s      *serviceController
	reg    *prometheus.Registry
}

// startServices runs the whole controller (real watcher, real writer) on a fake
// clientset and returns once its watches are open.
func startServices(t *testing.T, node *fakeRaft, lbClass string, objs ...runtime.Object) *svcHarness {
	t.Helper()
	client := fake.NewClientset(objs...)
	var mu sync.Mutex
	watching := map[string]bool{}
	client.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		mu.Lock()
		watching[a.GetResource().Resource] = true
		mu.Unlock()
		return false, nil, nil
	})
	reg := prometheus.NewRegistry()
	s, err := newServiceControllerFor(node, "", lbClass, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.run(ctx, client, watchers.NewWriter(client, client, "test-node"))
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "informer watches", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return watching["services"] && watching["endpointslices"] && watching["nodes"]
	})
	return &svcHarness{client: client, node: node, s: s, reg: reg}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type svcOpt func(*corev1.Service)

func withAnnotation(k, v string) svcOpt {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}

func dualStack(policy corev1.IPFamilyPolicy) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = &policy
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	}
}

func newLB(name string, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeLoadBalancer,
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports:      []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (h *svcHarness) create(t *testing.T, svcs ...*corev1.Service) {
	t.Helper()
	for _, s := range svcs {
		if _, err := h.client.CoreV1().Services(s.Namespace).Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// ingress returns the Service's status IPs, and false if any entry lacks ipMode VIP.
func (h *svcHarness) ingress(t *testing.T, name string) ([]string, bool) {
	t.Helper()
	var ips []string
	vip := true
	svc, err := h.client.CoreV1().Services("ns").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range svc.Status.LoadBalancer.Ingress {
		ips = append(ips, in.IP)
		vip = vip && in.IPMode != nil && *in.IPMode == corev1.LoadBalancerIPModeVIP
	}
	return ips, vip
}

func (h *svcHarness) waitIngress(t *testing.T, name string, want ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s ingress %v", name, want), func() bool {
		got, vip := h.ingress(t, name)
		return slices.Equal(got, want) && vip
	})
}

// waitEvent waits for an Event about Service name with this reason whose note
// contains substr.
func (h *svcHarness) waitEvent(t *testing.T, name, reason, substr string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("event %s on %s mentioning %q", reason, name, substr), func() bool {
		list, err := h.client.CoreV1().Events("ns").List(t.Context(), metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, e := range list.Items {
			if e.InvolvedObject.Name == name && e.Reason == reason && strings.Contains(e.Message, substr) {
				return true
			}
		}
		return false
	})
}

func (h *svcHarness) alloc(name string) (raftstore.Allocation, bool) {
	a, ok := h.node.State().Allocations["ns/"+name]
	return a, ok
}

func TestServicesAllocateAndWriteStatus(t *testing.T) {
	node := newFakeRaft(true)
	node.setPools(t, testPoolV4, testPoolDual)
	h := startServices(t, node, "")
	h.create(t,
		newLB("a"),
		newLB("b", dualStack(corev1.IPFamilyPolicyRequireDualStack)),
		newLB("c", dualStack(corev1.IPFamilyPolicyPreferDualStack)),
		newLB("d", withAnnotation(watchers.AnnotationPool, "xdual")),
	)
	h.waitIngress(t, "a", "198.51.100.100")
	h.waitIngress(t, "b", "198.51.100.200", "2001:db8:100::200")
	h.waitIngress(t, "c", "198.51.100.201", "2001:db8:100::201")
	h.waitIngress(t, "d", "198.51.100.202")
	a, ok := h.alloc("b")
	if !ok || a.UID != "uid-b" || a.Pool != "xdual" || !slices.Equal(a.Ports, []string{"TCP/80"}) {
		t.Fatalf("allocation of b: %+v", a)
	}
	h.waitEvent(t, "b", watchers.ReasonAllocated, "198.51.100.200, 2001:db8:100::200")
	if n := len(h.node.State().Allocations); n != 4 {
		t.Fatalf("%d allocations, want 4", n)
	}
}

func TestServicesWaitQuietlyForPools(t *testing.T) {
	node := newFakeRaft(true)
	h := startServices(t, node, "")
	h.create(t, newLB("a"))
	waitFor(t, "a reconciled without pools", func() bool { return metricOf(h.s.m.pending) == 1 })
	list, err := h.client.CoreV1().Events("ns").List(t.Context(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 0 {
		t.Fatalf("events before any pool was committed: %v %v", list, err)
	}
	node.setPools(t, testPoolV4)
	h.waitIngress(t, "a", "198.51.100.100")
	h.waitEvent(t, "a", watchers.ReasonAllocated, "198.51.100.100")
	list, err = h.client.CoreV1().Events("ns").List(t.Context(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("want only the allocation event, got %v %v", list.Items, err)
	}
}

func TestServicesLBClass(t *testing.T) {
	node := newFakeRaft(true)
	node.setPools(t, testPoolV4)
	h := startServices(t, node, "example.com/raftvip")
	mine, class := newLB("mine"), "example.com/raftvip"
	mine.Spec.LoadBalancerClass = &class
	h.create(t, newLB("classless"), mine)
	h.waitIngress(t, "mine", "198.51.100.100")
	if _, ok := h.alloc("classless"); ok {
		t.Fatal("a Service without our class got an allocation")
	}
	if ips, _ := h.ingress(t, "classless"); ips != nil {
		t.Fatalf("a Service without our class got status %v", ips)
	}
}

// Deleting a Service releases its address, and a Service pending on the exhausted
// pool gets it.
func TestServicesReleaseOnDeleteGoesToPending(t *testing.T) {
	node := newFakeRaft(true)
	node.setPools(t, "tiny=198.51.100.100")
	h := startServices(t, node, "")
	h.create(t, newLB("a"))
	h.waitIngress(t, "a", "198.51.100.100")
	h.create(t, newLB("b"))
	h.waitEvent(t, "b", watchers.ReasonAllocationFailed, "pool tiny exhausted")
	if err := h.client.CoreV1().Services("ns").Delete(t.Context(), "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitEvent(t, "a", watchers.ReasonReleased, "released 198.51.100.100: the Service was deleted")
	h.waitIngress(t, "b", "198.51.100.100")
}

func TestServicesReleaseWhenNoLongerLoadBalancer(t *testing.T) {
	node := newFakeRaft(true)
	node.setPools(t, testPoolV4)
	h := startServices(t, node, "")
	h.create(t, newLB("a"))
	h.waitIngress(t, "a", "198.51.100.100")
	svc, err := h.client.CoreV1().Services("ns").Get(t.Context(), "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Type = corev1.ServiceTypeClusterIP
	if _, err := h.client.CoreV1().Services("ns").Update(t.Context(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a's allocation released", func() bool { _, ok := h.alloc("a"); return !ok })
	// The real API server clears the status itself; the fake does not, so this shows
	// raftvip clearing what it wrote.
	h.waitIngress(t, "a")
	h.waitEvent(t, "a", watchers.ReasonReleased, "no longer of type LoadBalancer")
}

func TestServicesBadRequestsStayPendingAlone(t *testing.T) {
	node := newFakeRaft(true)
	node.setPools(t, testPoolV4, testPoolDual)
	h := startServices(t, node, "")
	h.create(t, newLB("holder", withAnnotation(watchers.AnnotationLoadBalancerIPs, "198.51.100.105")))
	h.waitIngress(t, "holder", "198.51.100.105")
	h.create(t,
		newLB("malformed", withAnnotation(watchers.AnnotationLoadBalancerIPs, "198.51.100.x")),
		newLB("outside", withAnnotation(watchers.AnnotationLoadBalancerIPs, "203.0.113.9")),
		newLB("taken", withAnnotation(watchers.AnnotationLoadBalancerIPs, "198.51.100.105")),
		newLB("fine"),
	)
	h.waitIngress(t, "fine", "198.51.100.100")
	h.waitEvent(t, "malformed", watchers.ReasonInvalidRequest, `"198.51.100.x" is not an IP address`)
	h.waitEvent(t, "outside", watchers.ReasonAllocationFailed, "203.0.113.9 is not in any pool")
	h.waitEvent(t, "taken", watchers.ReasonAllocationFailed, "198.51.100.105")
	for _, n := range []string{"malformed", "outside", "taken"} {
		if a, ok := h.alloc(n); ok {
			t.Errorf("%s got %v", n, a.IPs)
		}
		if ips, _ := h.ingress(t, n); ips != nil {
			t.Errorf("%s shows ingress %v", n, ips)
		}
	}
	if got := metricOf(h.s.m.pending); got != 3 {
		t.Errorf("pending gauge %v, want 3", got)
	}
	h.waitIngress(t, "holder", "198.51.100.105")
}

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
