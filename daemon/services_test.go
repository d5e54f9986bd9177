package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

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
// clientset and returns once its watches are open. lbClass is committed first, as
// the leader loop does with its --lb-class.
func startServices(t *testing.T, node *fakeRaft, lbClass string, objs ...runtime.Object) *svcHarness {
	t.Helper()
	node.seed(t, raftstore.SetLBClass{Class: lbClass})
	return startServicesFlag(t, node, lbClass, objs...)
}

// startServicesFlag runs the controller with --lb-class lbClass and commits nothing.
func startServicesFlag(t *testing.T, node *fakeRaft, lbClass string, objs ...runtime.Object) *svcHarness {
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

// TestServicesAdoptionConflictEventsOnBoth: a Service showing in status an address
// another Service holds gets a fresh one, and both Services hear of it.
func TestServicesAdoptionConflictEventsOnBoth(t *testing.T) {
	node := newFakeRaft(true)
	node.setPools(t, testPoolV4)
	h := startServices(t, node, "")
	h.create(t, newLB("holder"))
	h.waitIngress(t, "holder", "198.51.100.100")
	late := newLB("late")
	late.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.100"}}
	h.create(t, late)
	h.waitIngress(t, "late", "198.51.100.101")
	h.waitEvent(t, "holder", watchers.ReasonAdoptionConflict, "ns/late also shows ip 198.51.100.100")
	h.waitEvent(t, "late", watchers.ReasonAllocated, "198.51.100.100")
}
