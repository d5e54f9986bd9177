package watchers

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Defaults for Options; every one can be overridden.
const (
	// DefaultBatchWindow is how long the worker waits after the first queued Service
	// for more to arrive, so a burst becomes one handler call (one Raft commit).
	DefaultBatchWindow = 10 * time.Millisecond
	// DefaultMaxBatch bounds one handler call.
	DefaultMaxBatch = 500
	// DefaultEndpointDelay holds an EndpointSlice change back before its Service is
	// processed, so a storm of endpoint flips of one Service coalesces into one view.
	DefaultEndpointDelay = 100 * time.Millisecond
	// DefaultRetryBase and DefaultRetryMax bound the per-Service exponential backoff
	// after the handler fails for it.
	DefaultRetryBase = 50 * time.Millisecond
	DefaultRetryMax  = 30 * time.Second
)

// serviceIndex indexes EndpointSlices by the namespace/name of their Service.
const serviceIndex = "service"

// Update is one Service handed to the Handler. View is nil when the Service is gone
// (deleted, or never existed: a key the caller asked to requeue); it is shared with
// the watcher's cache and must not be modified.
type Update struct {
	Key  string
	View *View
}

// Handler reconciles a batch of changed Services. It returns the keys it could not
// handle with why; those are retried with backoff, the rest count as done until
// their view changes or they are requeued.
type Handler func(ctx context.Context, updates []Update) map[string]error

// Options tune a Watcher; the zero value is usable (defaults above, no class).
type Options struct {
	LBClass       string // the loadBalancerClass served at start; SetLBClass changes it
	Log           *slog.Logger
	Metrics       *Metrics
	BatchWindow   time.Duration
	MaxBatch      int
	EndpointDelay time.Duration
	RetryBase     time.Duration
	RetryMax      time.Duration
}

func (o Options) withDefaults() Options {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.BatchWindow == 0 {
		o.BatchWindow = DefaultBatchWindow
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.EndpointDelay == 0 {
		o.EndpointDelay = DefaultEndpointDelay
	}
	if o.RetryBase <= 0 {
		o.RetryBase = DefaultRetryBase
	}
	if o.RetryMax <= 0 {
		o.RetryMax = DefaultRetryMax
	}
	return o
}

// Watcher keeps informers on Services, EndpointSlices and Nodes and feeds changed
// Service views to a Handler. Every voter runs one so a new leader starts with warm
// caches; whether the handler acts is the caller's decision.
type Watcher struct {
	opts     Options
	factory  informers.SharedInformerFactory
	services cache.SharedIndexInformer
	slices   cache.SharedIndexInformer
	nodes    cache.SharedIndexInformer
	svcs     corelisters.ServiceLister
	nodeList corelisters.NodeLister
	queue    workqueue.TypedRateLimitingInterface[string]
	memo     *memo
	cache    *viewCache
	class    atomic.Pointer[string]
	// gone records when each Node was seen deleted (DeletedNodes); a Node
	// created again is dropped from it.
	goneMu sync.Mutex
	gone   map[string]time.Time
}

// New sets up the informers (with Transform) and the queue; nothing talks to the
// API server until Run.
func New(client kubernetes.Interface, opts Options) (*Watcher, error) {
	opts = opts.withDefaults()
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(Transform))
	w := &Watcher{
		opts:    opts,
		factory: f,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](opts.RetryBase, opts.RetryMax),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "raftvip-services"}),
		memo:  newMemo(),
		cache: newViewCache(),
		gone:  map[string]time.Time{},
	}
	w.class.Store(&opts.LBClass)
	svcInf := f.Core().V1().Services()
	w.services, w.svcs = svcInf.Informer(), svcInf.Lister()
	w.slices = f.Discovery().V1().EndpointSlices().Informer()
	nodeInf := f.Core().V1().Nodes()
	w.nodes, w.nodeList = nodeInf.Informer(), nodeInf.Lister()

	if err := w.slices.AddIndexers(cache.Indexers{serviceIndex: indexByService}); err != nil {
		return nil, fmt.Errorf("endpointslice index: %w", err)
	}
	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{w.services, w.serviceHandler()},
		{w.slices, w.sliceHandler()},
		{w.nodes, w.nodeHandler()},
	}
	for _, x := range handlers {
		if _, err := x.inf.AddEventHandler(x.h); err != nil {
			return nil, fmt.Errorf("informer handler: %w", err)
		}
	}
	return w, nil
}

func indexByService(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	key, err := sliceServiceKey(s)
	if err != nil {
		return nil, nil
	}
	return []string{key}, nil
}

func (w *Watcher) serviceHandler() cache.ResourceEventHandler {
	enqueue := func(obj any) {
		w.opts.Metrics.events.WithLabelValues("service").Inc()
		key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
		if err != nil {
			w.opts.Log.Warn("service event without a key", "err", err)
			return
		}
		w.queue.Add(key)
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}
}

// sliceHandler enqueues the Service of a changed slice after EndpointDelay: the
// delaying queue keeps one entry per key, so a storm of flips becomes one view.
func (w *Watcher) sliceHandler() cache.ResourceEventHandler {
	enqueue := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		s, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok {
			return
		}
		key, err := sliceServiceKey(s)
		if err != nil {
			return
		}
		w.queue.AddAfter(key, w.opts.EndpointDelay)
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			w.opts.Metrics.events.WithLabelValues("endpointslice").Inc()
			enqueue(obj)
		},
		UpdateFunc: func(old, obj any) {
			w.opts.Metrics.events.WithLabelValues("endpointslice").Inc()
			enqueue(old)
			enqueue(obj)
		},
		DeleteFunc: func(obj any) {
			w.opts.Metrics.events.WithLabelValues("endpointslice").Inc()
			enqueue(obj)
		},
	}
}

func (w *Watcher) nodeHandler() cache.ResourceEventHandler {
	count := func(any) { w.opts.Metrics.events.WithLabelValues("node").Inc() }
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			count(obj)
			if n, ok := obj.(*corev1.Node); ok {
				w.goneMu.Lock()
				delete(w.gone, n.Name)
				w.goneMu.Unlock()
			}
		},
		UpdateFunc: func(_, obj any) { count(obj) },
		DeleteFunc: func(obj any) {
			count(obj)
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if n, ok := obj.(*corev1.Node); ok {
				w.goneMu.Lock()
				w.gone[n.Name] = time.Now()
				w.goneMu.Unlock()
			}
		},
	}
}

// DeletedNodes maps each Node this watcher saw deleted, and not created again,
// to when it saw that. A Node that never existed is not in it: a control-plane
// node whose kubelet has not registered yet must not look deleted. The leader
// removes the Raft members these name (membership.DecideNodeRemoval).
func (w *Watcher) DeletedNodes() map[string]time.Time {
	w.goneMu.Lock()
	defer w.goneMu.Unlock()
	return maps.Clone(w.gone)
}

// Run starts the informers, waits for their caches (informers retry with backoff
// while the API server is away) and then feeds the handler until ctx is done. Nothing
// reaches the handler before the caches are complete: a Service missing from a
// half-filled cache would look deleted.
func (w *Watcher) Run(ctx context.Context, h Handler) {
	defer w.factory.Shutdown()
	w.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), w.services.HasSynced, w.slices.HasSynced, w.nodes.HasSynced) {
		w.queue.ShutDown()
		return
	}
	w.opts.Log.Info("kubernetes caches synced", "services", len(w.services.GetStore().ListKeys()),
		"endpointslices", len(w.slices.GetStore().ListKeys()), "nodes", len(w.nodes.GetStore().ListKeys()))
	stop := context.AfterFunc(ctx, w.queue.ShutDown)
	defer stop()
	for w.processBatch(ctx, h) {
	}
}

// Requeue makes the worker hand these Services to the handler again even if their
// views did not change (for example keys of allocations whose Service may be gone, or
// pending Services after addresses were freed).
func (w *Watcher) Requeue(keys ...string) {
	w.memo.invalidate(keys)
	for _, k := range keys {
		w.queue.Add(k)
	}
}

// SetLBClass makes the watcher compute views for class from now on (the class the
// cluster committed, which may differ from this node's flag) and requeues every
// Service, whose Ours may have changed.
func (w *Watcher) SetLBClass(class string) {
	if w.LBClass() == class {
		return
	}
	w.class.Store(&class)
	w.RequeueAll()
}

// LBClass returns the loadBalancerClass views are computed for.
func (w *Watcher) LBClass() string { return *w.class.Load() }

// RequeueAll hands every known Service to the handler again: a new leader resyncs
// status and allocations this way.
func (w *Watcher) RequeueAll() {
	w.memo.invalidateAll()
	for _, k := range w.services.GetStore().ListKeys() {
		w.queue.Add(k)
	}
}

// Synced reports whether every informer cache is complete; before that a missing
// Service or endpoint means "not seen yet", not "gone".
func (w *Watcher) Synced() bool {
	return w.services.HasSynced() && w.slices.HasSynced() && w.nodes.HasSynced()
}

// View returns key's current view from the caches (shared: read only); nil when the
// Service does not exist (or the caches cannot say).
func (w *Watcher) View(key string) *View {
	v, err := w.view(key)
	if err != nil {
		return nil
	}
	return v
}

// Views returns, from the caches, the view of every Service this agent serves, for
// the leader's decision of who announces what. The views are shared: read only.
func (w *Watcher) Views() []*View {
	var out []*View
	for _, key := range w.services.GetStore().ListKeys() {
		if v := w.View(key); v != nil && v.Ours {
			out = append(out, v)
		}
	}
	return out
}

// ExcludedNodes lists, sorted, the nodes labelled
// node.kubernetes.io/exclude-from-external-load-balancers: they must not announce
// LoadBalancer addresses.
func (w *Watcher) ExcludedNodes() []string {
	nodes, err := w.nodeList.List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range nodes {
		if _, ok := n.Labels[corev1.LabelNodeExcludeBalancers]; ok {
			out = append(out, n.Name)
		}
	}
	slices.Sort(out)
	return out
}

// processBatch takes what the queue holds (waiting BatchWindow for a burst to
// arrive), drops unchanged views and hands the rest to h in one call.
func (w *Watcher) processBatch(ctx context.Context, h Handler) bool {
	first, shutdown := w.queue.Get()
	if shutdown {
		return false
	}
	keys := []string{first}
	if w.opts.BatchWindow > 0 {
		t := time.NewTimer(w.opts.BatchWindow)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	// One worker: while Len() > 0, Get returns at once.
	for len(keys) < w.opts.MaxBatch && w.queue.Len() > 0 {
		k, shutdown := w.queue.Get()
		if shutdown {
			break
		}
		keys = append(keys, k)
	}
	defer func() {
		for _, k := range keys {
			w.queue.Done(k)
		}
	}()
	token := w.memo.token()
	var updates []Update
	hashes := make(map[string]uint64, len(keys))
	for _, k := range keys {
		v, err := w.view(k)
		if err != nil {
			w.opts.Log.Warn("service view", "service", k, "err", err)
			w.queue.AddRateLimited(k)
			continue
		}
		var hv uint64
		if v != nil {
			hv = v.Hash()
		}
		if v != nil && !w.memo.changed(k, hv) {
			w.opts.Metrics.views.WithLabelValues("unchanged").Inc()
			w.queue.Forget(k)
			continue
		}
		w.opts.Metrics.views.WithLabelValues("changed").Inc()
		hashes[k] = hv
		updates = append(updates, Update{Key: k, View: v})
	}
	if len(updates) == 0 {
		return true
	}
	w.opts.Metrics.batches.Inc()
	failed := h(ctx, updates)
	for _, u := range updates {
		if err := failed[u.Key]; err != nil {
			w.opts.Log.Debug("service reconcile failed; retrying", "service", u.Key, "err", err)
			w.queue.AddRateLimited(u.Key)
			continue
		}
		w.queue.Forget(u.Key)
		if u.View == nil {
			w.memo.forget(u.Key, token)
		} else {
			w.memo.record(u.Key, hashes[u.Key], token)
		}
	}
	return true
}

// view computes key's view from the caches, or nil when the Service does not exist.
// Views are shared (cached until the Service or one of its slices changes) and must
// not be modified.
func (w *Watcher) view(key string) (*View, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil, err
	}
	svc, err := w.svcs.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		w.cache.drop(key)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	class := w.LBClass()
	var slices []*discoveryv1.EndpointSlice
	if IsOurs(svc, class) {
		objs, err := w.slices.GetIndexer().ByIndex(serviceIndex, key)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if s, ok := o.(*discoveryv1.EndpointSlice); ok {
				slices = append(slices, s)
			}
		}
	}
	fp, cacheable := fingerprint(svc, slices)
	fp = class + "|" + fp
	if v, ok := w.cache.get(key, fp); cacheable && ok {
		return v, nil
	}
	v := ComputeView(svc, slices, class)
	if cacheable {
		w.cache.put(key, fp, v)
	}
	return v, nil
}
