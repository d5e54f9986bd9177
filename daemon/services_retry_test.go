package daemon

import (
	"errors"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/raftvip/raftvip/watchers"
)

// update applies f to Service name through the API, as a user editing it would.
func (h *svcHarness) update(t *testing.T, name string, f func(*corev1.Service)) {
	t.Helper()
	svc, err := h.client.CoreV1().Services("ns").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f(svc)
	if _, err := h.client.CoreV1().Services("ns").Update(t.Context(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func withPort(port int32) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.Ports = []corev1.ServicePort{{Port: port, Protocol: corev1.ProtocolTCP}}
	}
}

// A Service Pending because the address it requests is held by another Service is
// retried when the holder changes what sharing needs (ports, key) or goes away; the
// holder's change frees no address, so only the unblock rule (ipam.Unblocks) catches it.
func TestServicesPendingRetriedWhenHolderChanges(t *testing.T) {
	const ip = "198.51.100.105"
	cases := []struct {
		name   string
		holder []svcOpt
		waiter []svcOpt
		why    string
		change func(t *testing.T, h *svcHarness)
	}{
		{
			name:   "port clash, holder moves to another port",
			holder: []svcOpt{withAnnotation(watchers.AnnotationAllowSharedIP, "k")},
			waiter: []svcOpt{withAnnotation(watchers.AnnotationAllowSharedIP, "k")},
			why:    "already uses port TCP/80",
			change: func(t *testing.T, h *svcHarness) {
				h.update(t, "holder", func(s *corev1.Service) { withPort(8080)(s) })
			},
		},
		{
			name:   "sharing-key conflict, holder takes the waiter's key",
			holder: []svcOpt{withAnnotation(watchers.AnnotationAllowSharedIP, "x")},
			waiter: []svcOpt{withAnnotation(watchers.AnnotationAllowSharedIP, "y"), withPort(443)},
			why:    `under sharing key "x", not "y"`,
			change: func(t *testing.T, h *svcHarness) {
				h.update(t, "holder", func(s *corev1.Service) { s.Annotations[watchers.AnnotationAllowSharedIP] = "y" })
			},
		},
		{
			name:   "in use, holder deleted",
			waiter: []svcOpt{withPort(443)},
			why:    "is in use by ns/holder",
			change: func(t *testing.T, h *svcHarness) {
				if err := h.client.CoreV1().Services("ns").Delete(t.Context(), "holder", metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			node := newFakeRaft(true)
			node.setPools(t, testPoolV4)
			h := startServices(t, node, "")
			h.create(t, newLB("holder", append(c.holder, withAnnotation(watchers.AnnotationLoadBalancerIPs, ip))...))
			h.waitIngress(t, "holder", ip)
			h.create(t, newLB("waiter", append(c.waiter, withAnnotation(watchers.AnnotationLoadBalancerIPs, ip))...))
			h.waitEvent(t, "waiter", watchers.ReasonAllocationFailed, c.why)
			if _, ok := h.alloc("waiter"); ok {
				t.Fatal("the waiter got an allocation before the holder changed")
			}
			c.change(t, h)
			h.waitIngress(t, "waiter", ip)
			waitFor(t, "the pending gauge back to 0", func() bool { return metricOf(h.s.m.pending) == 0 })
		})
	}
}

// A PreferDualStack Service that got IPv4 alone because its pool's only IPv6 address
// was taken gains IPv6 when that address is freed, with no pool change.
func TestServicesPreferDualStackGainsFreedFamily(t *testing.T) {
	node := newFakeRaft(true)
	node.setPools(t, "d=198.51.100.200-198.51.100.201,2001:db8:100::200")
	h := startServices(t, node, "")
	v6 := newLB("v6")
	v6.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	h.create(t, v6)
	h.waitIngress(t, "v6", "2001:db8:100::200")
	h.create(t, newLB("p", dualStack(corev1.IPFamilyPolicyPreferDualStack)))
	h.waitIngress(t, "p", "198.51.100.200")
	if err := h.client.CoreV1().Services("ns").Delete(t.Context(), "v6", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitIngress(t, "p", "198.51.100.200", "2001:db8:100::200")
	h.waitEvent(t, "p", watchers.ReasonAllocated, "added IPv6 2001:db8:100::200")
}

// failStatusOnce makes the first status write of Service name fail, as an API
// server timeout would, and counts the attempts.
func failStatusOnce(h *svcHarness, name string) func() int {
	var mu sync.Mutex
	attempts := 0
	h.client.PrependReactor("patch", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.PatchAction)
		if p.GetSubresource() != "status" || p.GetName() != name {
			return false, nil, nil
		}
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts == 1 {
			return true, nil, errors.New("injected status write failure")
		}
		return false, nil, nil
	})
	return func() int { mu.Lock(); defer mu.Unlock(); return attempts }
}

// events lists the Events about Service name with this reason.
func (h *svcHarness) events(t *testing.T, name, reason string) []string {
	t.Helper()
	list, err := h.client.CoreV1().Events("ns").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name && e.Reason == reason {
			out = append(out, e.Message)
		}
	}
	return out
}

// The decision is committed but its status write fails: the watcher's retry writes
// the status and sends the Event the first attempt held back, once.
func TestServicesStatusWriteFailureKeepsEvents(t *testing.T) {
	node := newFakeRaft(true)
	node.setPools(t, testPoolV4)
	h := startServices(t, node, "")
	attempts := failStatusOnce(h, "a")
	h.create(t, newLB("a"))
	h.waitIngress(t, "a", "198.51.100.100")
	h.waitEvent(t, "a", watchers.ReasonAllocated, "allocated 198.51.100.100 from pool v4")
	if n := attempts(); n < 2 {
		t.Fatalf("%d status writes, want the failed one and its retry", n)
	}
	if got := h.events(t, "a", watchers.ReasonAllocated); len(got) != 1 {
		t.Fatalf("Allocated Events %q, want exactly one", got)
	}
	if len(h.s.unsent) != 0 {
		t.Fatalf("Events still held back: %v", h.s.unsent)
	}
}

// A release whose status write fails still frees the address for the Service
// pending on it at once (the bookkeeping follows the commit), and the released
// Service gets its Event from the retry.
func TestServicesStatusWriteFailureKeepsRelease(t *testing.T) {
	node := newFakeRaft(true)
	node.setPools(t, "tiny=198.51.100.100")
	h := startServices(t, node, "")
	h.create(t, newLB("a"))
	h.waitIngress(t, "a", "198.51.100.100")
	h.create(t, newLB("b"))
	h.waitEvent(t, "b", watchers.ReasonAllocationFailed, "pool tiny exhausted")
	attempts := failStatusOnce(h, "a")
	h.update(t, "a", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP })
	h.waitIngress(t, "b", "198.51.100.100")
	h.waitIngress(t, "a")
	h.waitEvent(t, "a", watchers.ReasonReleased, "released 198.51.100.100")
	if n := attempts(); n < 2 {
		t.Fatalf("%d status writes of a, want the failed one and its retry", n)
	}
	got := h.events(t, "a", watchers.ReasonReleased)
	if len(got) != 1 || !strings.Contains(got[0], "no longer of type LoadBalancer") {
		t.Fatalf("Released Events %q, want one", got)
	}
}
