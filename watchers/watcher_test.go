package watchers

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// waitTimeout is a failure deadline for things that happen within milliseconds.
const waitTimeout = 30 * time.Second

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// recorder is a Handler that remembers every batch and can be gated or told to fail.
type recorder struct {
	mu      sync.Mutex
	batches [][]Update
	gate    chan struct{} // when set, the next call blocks until it is closed
	fail    map[string]int
}

func (r *recorder) handle(_ context.Context, updates []Update) map[string]error {
	r.mu.Lock()
	gate := r.gate
	r.gate = nil
	r.batches = append(r.batches, slices.Clone(updates))
	errs := map[string]error{}
	for _, u := range updates {
		if r.fail[u.Key] > 0 {
			r.fail[u.Key]--
			errs[u.Key] = errors.New("injected failure")
		}
	}
	r.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return errs
}

// views returns every view delivered for key, in order (nil for deletions).
func (r *recorder) views(key string) []*View {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*View
	for _, b := range r.batches {
		for _, u := range b {
			if u.Key == key {
				out = append(out, u.View)
			}
		}
	}
	return out
}

func (r *recorder) last(key string) (*View, bool) {
	v := r.views(key)
	if len(v) == 0 {
		return nil, false
	}
	return v[len(v)-1], true
}

func (r *recorder) numBatches() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.batches)
}

type harness struct {
	client *fake.Clientset
	w      *Watcher
	rec    *recorder
	m      *Metrics
}

// start runs a Watcher on a fake clientset and returns once its watches are open, so
// objects created afterwards are never lost between list and watch.
func start(t *testing.T, opts Options, objs ...runtime.Object) *harness {
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
	if opts.EndpointDelay == 0 {
		opts.EndpointDelay = time.Millisecond
	}
	if opts.RetryBase == 0 {
		opts.RetryBase, opts.RetryMax = time.Millisecond, 10*time.Millisecond
	}
	opts.Metrics = NewMetrics()
	w, err := New(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{client: client, w: w, rec: &recorder{fail: map[string]int{}}, m: opts.Metrics}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, h.rec.handle)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitUntil(t, "watches on services, endpointslices and nodes", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return watching["services"] && watching["endpointslices"] && watching["nodes"]
	})
	return h
}

func (h *harness) create(t *testing.T, svc *corev1.Service) {
	t.Helper()
	if _, err := h.client.CoreV1().Services(svc.Namespace).Create(t.Context(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) update(t *testing.T, svc *corev1.Service) {
	t.Helper()
	if _, err := h.client.CoreV1().Services(svc.Namespace).Update(t.Context(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func (h *harness) events(kind string) int {
	return int(counterValue(h.m.events.WithLabelValues(kind)))
}

func (h *harness) delivered(t *testing.T, key string, cond func(*View) bool) *View {
	t.Helper()
	var got *View
	waitUntil(t, "a view of "+key, func() bool {
		v, ok := h.rec.last(key)
		got = v
		return ok && cond(v)
	})
	return got
}

func TestWatcherDeliversOnlyChangedViews(t *testing.T) {
	h := start(t, Options{})
	svc := lbService("ns", "a")
	h.create(t, svc)
	v := h.delivered(t, "ns/a", func(v *View) bool { return v != nil })
	if !v.Ours || v.HasEndpoints {
		t.Fatalf("first view %+v", v)
	}

	// A label change and a no-op status write do not change the view.
	svc.Labels = map[string]string{"team": "x"}
	h.update(t, svc)
	// A sentinel Service created afterwards: once it is delivered, a's events have
	// been processed too (one informer delivers in order, the queue is FIFO).
	h.create(t, lbService("ns", "sentinel"))
	h.delivered(t, "ns/sentinel", func(v *View) bool { return v != nil })
	if n := len(h.rec.views("ns/a")); n != 1 {
		t.Fatalf("a delivered %d times, want 1: a label change must not reach the reconcile", n)
	}
	if got := counterValue(h.m.views.WithLabelValues("unchanged")); got < 1 {
		t.Fatalf("unchanged views counter %v, want >= 1", got)
	}

	// A usable endpoint changes the view.
	tru := ptr(true)
	sl := slice("ns", "a", "a-1", ep{node: "n1", ready: tru})
	if _, err := h.client.DiscoveryV1().EndpointSlices("ns").Create(t.Context(), sl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.delivered(t, "ns/a", func(v *View) bool { return v != nil && v.HasEndpoints })

	// Deleting the Service delivers a nil view.
	if err := h.client.CoreV1().Services("ns").Delete(t.Context(), "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.delivered(t, "ns/a", func(v *View) bool { return v == nil })
}

// While the handler works on a Service, any number of changes to it coalesce into
// one more view: the latest.
func TestWatcherCoalescesBursts(t *testing.T) {
	h := start(t, Options{})
	gate := make(chan struct{})
	h.rec.mu.Lock()
	h.rec.gate = gate
	h.rec.mu.Unlock()
	svc := lbService("ns", "a")
	h.create(t, svc)
	h.delivered(t, "ns/a", func(v *View) bool { return v != nil })
	const burst = 50
	for i := range burst {
		svc.Annotations = map[string]string{AnnotationPool: fmt.Sprintf("p%d", i)}
		h.update(t, svc)
	}
	waitUntil(t, "all service events received", func() bool { return h.events("service") == burst+1 })
	close(gate)
	last := h.delivered(t, "ns/a", func(v *View) bool { return v != nil && v.Pool == fmt.Sprintf("p%d", burst-1) })
	if n := len(h.rec.views("ns/a")); n != 2 {
		t.Fatalf("%d events gave %d views, want 2 (the first and the latest)", burst+1, n)
	}
	if last.Pool != "p49" {
		t.Fatalf("last view has pool %q", last.Pool)
	}
}

// A burst of Services queued while the handler is busy reaches it as one batch, or as
// batches of MaxBatch.
func TestWatcherBatches(t *testing.T) {
	for _, tt := range []struct{ maxBatch, wantBatches int }{{0, 1}, {30, 4}} {
		t.Run(fmt.Sprintf("max %d", tt.maxBatch), func(t *testing.T) {
			h := start(t, Options{MaxBatch: tt.maxBatch})
			gate := make(chan struct{})
			h.rec.mu.Lock()
			h.rec.gate = gate
			h.rec.mu.Unlock()
			h.create(t, lbService("ns", "gate"))
			h.delivered(t, "ns/gate", func(v *View) bool { return v != nil })
			const n = 100
			for i := range n {
				h.create(t, lbService("ns", fmt.Sprintf("s%03d", i)))
			}
			waitUntil(t, "all service events received", func() bool { return h.events("service") == n+1 })
			close(gate)
			waitUntil(t, "all services delivered", func() bool {
				for i := range n {
					if _, ok := h.rec.last(fmt.Sprintf("ns/s%03d", i)); !ok {
						return false
					}
				}
				return true
			})
			if got := h.rec.numBatches() - 1; got != tt.wantBatches {
				t.Fatalf("%d services arrived in %d batches, want %d", n, got, tt.wantBatches)
			}
		})
	}
}

func TestWatcherRetriesFailures(t *testing.T) {
	h := start(t, Options{})
	h.rec.mu.Lock()
	h.rec.fail["ns/a"] = 2
	h.rec.mu.Unlock()
	h.create(t, lbService("ns", "a"))
	waitUntil(t, "three deliveries (two failures, one success)", func() bool { return len(h.rec.views("ns/a")) == 3 })
	h.create(t, lbService("ns", "sentinel"))
	h.delivered(t, "ns/sentinel", func(v *View) bool { return v != nil })
	if n := len(h.rec.views("ns/a")); n != 3 {
		t.Fatalf("a delivered %d times after succeeding, want 3", n)
	}
}

func TestWatcherRequeue(t *testing.T) {
	h := start(t, Options{})
	h.create(t, lbService("ns", "a"))
	h.create(t, lbService("ns", "b"))
	h.delivered(t, "ns/a", func(v *View) bool { return v != nil })
	h.delivered(t, "ns/b", func(v *View) bool { return v != nil })

	h.w.Requeue("ns/a", "ns/ghost")
	waitUntil(t, "a delivered again", func() bool { return len(h.rec.views("ns/a")) == 2 })
	h.delivered(t, "ns/ghost", func(v *View) bool { return v == nil })
	if n := len(h.rec.views("ns/b")); n != 1 {
		t.Fatalf("Requeue(a) delivered b %d times", n)
	}

	h.w.RequeueAll()
	waitUntil(t, "every service delivered again", func() bool {
		return len(h.rec.views("ns/a")) == 3 && len(h.rec.views("ns/b")) == 2
	})
}

func TestWatcherIgnoresSlicesOfOtherServices(t *testing.T) {
	h := start(t, Options{})
	cip := lbService("ns", "cluster-ip")
	cip.Spec.Type = corev1.ServiceTypeClusterIP
	h.create(t, cip)
	h.delivered(t, "ns/cluster-ip", func(v *View) bool { return v != nil && !v.Ours })
	tru := ptr(true)
	sl := slice("ns", "cluster-ip", "c-1", ep{node: "n1", ready: tru})
	if _, err := h.client.DiscoveryV1().EndpointSlices("ns").Create(t.Context(), sl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the slice event", func() bool { return h.events("endpointslice") == 1 })
	h.create(t, lbService("ns", "sentinel"))
	h.delivered(t, "ns/sentinel", func(v *View) bool { return v != nil })
	if n := len(h.rec.views("ns/cluster-ip")); n != 1 {
		t.Fatalf("endpoints of a ClusterIP Service reached the reconcile: %d views", n)
	}
}

func TestExcludedNodes(t *testing.T) {
	h := start(t, Options{})
	for name, labels := range map[string]map[string]string{
		"n1": nil,
		"n2": {corev1.LabelNodeExcludeBalancers: ""},
		"n3": {corev1.LabelNodeExcludeBalancers: "true"},
	} {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		if _, err := h.client.CoreV1().Nodes().Create(t.Context(), n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "n2 and n3 excluded", func() bool { return slices.Equal(h.w.ExcludedNodes(), []string{"n2", "n3"}) })
}

func TestWriterSetIngress(t *testing.T) {
	svc := lbService("ns", "a")
	client := fake.NewClientset(svc)
	w := NewWriter(client, client, "node-1")
	ips := []netip.Addr{netip.MustParseAddr("198.51.100.100"), netip.MustParseAddr("2001:db8:100::100")}
	if err := w.SetIngress(t.Context(), "ns", "a", ips); err != nil {
		t.Fatal(err)
	}
	got, err := client.CoreV1().Services("ns").Get(t.Context(), "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v := ComputeView(got, nil, "")
	if !slices.Equal(v.Ingress, ips) || !v.IngressIsVIP {
		t.Fatalf("ingress %+v", got.Status.LoadBalancer.Ingress)
	}
	if got.Spec.Type != corev1.ServiceTypeLoadBalancer || got.Spec.Ports[0].Port != 80 {
		t.Fatalf("spec changed by a status write: %+v", got.Spec)
	}
	if err := w.SetIngress(t.Context(), "ns", "a", nil); err != nil {
		t.Fatal(err)
	}
	got, _ = client.CoreV1().Services("ns").Get(t.Context(), "a", metav1.GetOptions{})
	if len(got.Status.LoadBalancer.Ingress) != 0 {
		t.Fatalf("ingress not cleared: %+v", got.Status.LoadBalancer.Ingress)
	}
	if err := w.SetIngress(t.Context(), "ns", "missing", ips); err == nil {
		t.Fatal("status of a missing Service: no error")
	}
}

func TestWriterEvents(t *testing.T) {
	client := fake.NewClientset()
	w := NewWriter(client, client, "node-1")
	w.Start(t.Context())
	ref := ServiceRef{Namespace: "ns", Name: "a", UID: "uid-a"}
	w.Event(ref, true, ReasonAllocationFailed, "pool blue exhausted for IPv4")
	w.Event(ref, false, ReasonAnnouncer, "198.51.100.100 moved from n1 to n2")
	// Same reason, different message: both must survive (no folding into one series).
	w.Event(ref, false, ReasonAnnouncer, "198.51.100.100 moved from n2 to n3")
	var events []string
	waitUntil(t, "three events", func() bool {
		list, err := client.CoreV1().Events("ns").List(t.Context(), metav1.ListOptions{})
		if err != nil {
			return false
		}
		events = nil
		for _, e := range list.Items {
			o := e.InvolvedObject
			if o.Kind != "Service" || o.Name != "a" || o.UID != "uid-a" || e.Source.Component != EventComponent ||
				e.ReportingController != EventComponent || e.Source.Host != "node-1" {
				t.Fatalf("event %+v", e)
			}
			events = append(events, e.Type+" "+e.Reason+": "+e.Message)
		}
		return len(events) == 3
	})
	slices.Sort(events)
	want := []string{
		"Normal VIPAnnouncer: 198.51.100.100 moved from n1 to n2",
		"Normal VIPAnnouncer: 198.51.100.100 moved from n2 to n3",
		"Warning AllocationFailed: pool blue exhausted for IPv4",
	}
	if !slices.Equal(events, want) {
		t.Fatalf("events\n%q\nwant\n%q", events, want)
	}
}

// Views are cached by the resourceVersions of the Service and its slices: asking
// again for an unchanged Service does not recompute, any change does.
func TestViewCache(t *testing.T) {
	svc := lbService("ns", "a")
	svc.ResourceVersion = "1"
	tru := ptr(true)
	sl := slice("ns", "a", "a-1", ep{node: "n1", ready: tru})
	sl.ResourceVersion = "1"
	h := start(t, Options{}, svc, sl)
	waitUntil(t, "caches synced", h.w.Synced)
	first := h.w.View("ns/a")
	if first == nil || !first.HasEndpoints {
		t.Fatalf("view %+v", first)
	}
	if again := h.w.View("ns/a"); again != first {
		t.Fatal("unchanged Service: view recomputed")
	}
	if vs := h.w.Views(); len(vs) != 1 || vs[0] != first {
		t.Fatalf("Views() = %v, want the cached view", vs)
	}
	sl.ResourceVersion = "2"
	sl.Endpoints[0].Conditions.Ready = ptr(false)
	if _, err := h.client.DiscoveryV1().EndpointSlices("ns").Update(t.Context(), sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the slice change seen", func() bool { v := h.w.View("ns/a"); return v != nil && !v.HasEndpoints })
	if err := h.client.CoreV1().Services("ns").Delete(t.Context(), "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the deletion seen", func() bool { return h.w.View("ns/a") == nil })
	h.w.cache.mu.Lock()
	defer h.w.cache.mu.Unlock()
	if len(h.w.cache.m) != 0 {
		t.Fatalf("cache keeps deleted Services: %v", h.w.cache.m)
	}
}
