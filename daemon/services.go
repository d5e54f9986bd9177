package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/raftvip/raftvip/daemon/ipam"
	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/watchers"
)

const (
	// serviceApplyTimeout bounds one Raft commit of a batch of decisions.
	serviceApplyTimeout = 5 * time.Second
	// maxCommandsPerApply splits a huge burst into a few Raft entries of bounded size.
	maxCommandsPerApply = 500
	// statusWriters is how many status patches run at once.
	statusWriters = 16
	// leaderPoll is how often the controller looks for a leadership gain it has not
	// seen through a state change.
	leaderPoll = 250 * time.Millisecond
	// barrierKey is released (a no-op) once per leadership term before the first
	// decision: Raft applies in order, so once it is applied this node's FSM holds
	// everything earlier leaders committed. Namespaces are DNS labels and cannot
	// contain a dot, so no Service ever has this key.
	barrierKey = "raftvip.io/barrier"
)

// serviceRaft is what the service controller needs of the Raft node.
type serviceRaft interface {
	IsLeader() bool
	Status() raftstore.Status
	State() raftstore.State
	Changed() <-chan struct{}
	Apply(raftstore.Command, time.Duration) error
}

// serviceController is the leader's reconcile of LoadBalancer Services: it allocates
// and releases addresses through Raft and writes status and Events back. Every voter
// runs one so its caches are warm; only the leader acts.
type serviceController struct {
	node       serviceRaft
	kubeconfig string
	lbClass    string
	log        *slog.Logger
	m          *serviceMetrics
	wm         *watchers.Metrics

	// Set by run once the API server answers; read by the owners loop too.
	w   atomic.Pointer[watchers.Watcher]
	out atomic.Pointer[watchers.Writer]

	// Owned by the reconcile (the watcher's single worker goroutine).
	pending       map[string]bool   // Services left without addresses; true: retried when another Service unblocks them
	partial       map[string]bool   // PreferDualStack Services holding one family: retried when addresses are freed
	unsent        map[string]unsent // what committed decisions whose status write failed still owe
	barrierTerm   uint64
	warnedNoPools bool
	warnedNoClass bool
}

type serviceMetrics struct {
	allocations prometheus.Gauge
	pending     prometheus.Gauge
	latency     prometheus.Histogram
	reconciles  prometheus.Counter
	applies     prometheus.Counter
	commands    prometheus.Counter
	statuses    *prometheus.CounterVec
}

func newServiceMetrics() *serviceMetrics {
	return &serviceMetrics{
		allocations: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "raftvip_service_allocations",
			Help: "Services holding committed LoadBalancer addresses.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "raftvip_service_pending",
			Help: "LoadBalancer Services the leader could not give addresses (see their Events).",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "raftvip_service_reconcile_duration_seconds",
			Help:    "Time the leader spent on one batch of changed Services: decide, commit, write status.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		reconciles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftvip_service_reconciles_total",
			Help: "Services reconciled by the leader (changed views only; compare raftvip_kube_events_received_total).",
		}),
		applies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftvip_service_raft_applies_total",
			Help: "Raft entries the service reconcile committed (each a batch of commands).",
		}),
		commands: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftvip_service_raft_commands_total",
			Help: "Allocate and Release commands the service reconcile committed.",
		}),
		statuses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raftvip_service_status_writes_total",
			Help: "status.loadBalancer writes, by result.",
		}, []string{"result"}),
	}
}

func (m *serviceMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.allocations, m.pending, m.latency, m.reconciles, m.applies, m.commands, m.statuses}
}

// newServiceController prepares the controller and registers its metrics; it does
// not touch the network. Run does the rest.
func newServiceController(node *raftstore.Node, kubeconfig, lbClass string, log *slog.Logger, reg prometheus.Registerer) (*serviceController, error) {
	return newServiceControllerFor(node, kubeconfig, lbClass, log, reg)
}

func newServiceControllerFor(node serviceRaft, kubeconfig, lbClass string, log *slog.Logger, reg prometheus.Registerer) (*serviceController, error) {
	s := &serviceController{
		node:       node,
		kubeconfig: kubeconfig,
		lbClass:    lbClass,
		log:        log.With("component", "services"),
		m:          newServiceMetrics(),
		wm:         watchers.NewMetrics(),
		pending:    map[string]bool{},
		partial:    map[string]bool{},
		unsent:     map[string]unsent{},
	}
	if reg != nil {
		for _, c := range append(s.m.collectors(), s.wm.Collectors()...) {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("service metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Run waits for the API server (with backoff, never blocking anything else), starts
// the informers and reconciles until ctx is done. It acts only while this node is the
// Raft leader and resyncs every Service on each leadership gain.
func (s *serviceController) Run(ctx context.Context) {
	clients, err := watchers.Connect(ctx, s.kubeconfig, s.log)
	if err != nil {
		return
	}
	s.run(ctx, clients.Main, watchers.NewWriter(clients.Main, clients.Events, s.node.Status().Node))
}

func (s *serviceController) run(ctx context.Context, client kubernetes.Interface, out *watchers.Writer) {
	out.Start(ctx)
	w, err := watchers.New(client, watchers.Options{LBClass: s.lbClass, Log: s.log, Metrics: s.wm})
	if err != nil {
		s.log.Error("service controller stopped", "err", err)
		return
	}
	s.out.Store(out)
	s.w.Store(w)
	go s.followLeadership(ctx)
	w.Run(ctx, s.reconcile)
}

// followLeadership requeues every Service, and every key holding an allocation, when
// this node becomes leader or the committed pools or loadBalancerClass change: the new leader rewrites
// status and releases what belongs to deleted Services, and pending Services get
// another chance (or an Event when their address left every pool).
func (s *serviceController) followLeadership(ctx context.Context) {
	tick := time.NewTicker(leaderPoll)
	defer tick.Stop()
	wasLeader := false
	var pools map[string]raftstore.Pool
	var class *string
	changed := s.node.Changed()
	stateMoved := true
	for {
		leader := s.node.IsLeader()
		if stateMoved || leader != wasLeader {
			changed = s.node.Changed()
			st := s.node.State()
			s.m.allocations.Set(float64(len(st.Allocations)))
			if leader && (!wasLeader || !reflect.DeepEqual(pools, st.Pools) || !reflect.DeepEqual(class, st.LBClass)) {
				keys := make([]string, 0, len(st.Allocations))
				for k := range st.Allocations {
					keys = append(keys, k)
				}
				s.log.Info("resyncing all services", "gained_leadership", !wasLeader, "allocations", len(keys))
				s.w.Load().RequeueAll()
				s.w.Load().Requeue(keys...)
			}
			pools, class = st.Pools, st.LBClass
		}
		wasLeader = leader
		stateMoved = false
		select {
		case <-ctx.Done():
			return
		case <-changed:
			stateMoved = true
		case <-tick.C:
		}
	}
}

// svcDecision is what the leader decided for one Service in a batch.
type svcDecision struct {
	key          string
	ref          watchers.ServiceRef
	cmds         []raftstore.Command
	writeIngress bool
	ingress      []netip.Addr
	ips          []netip.Addr // the committed allocation's addresses, for the log
	events       []svcEvent
	peerEvents   []peerEvent // on the other Service of an adoption conflict
	pending      bool
	waits        bool         // pending because of other Services (ipam.Waits): retried when one unblocks it
	partial      bool         // PreferDualStack holding fewer families than it wants (ipam.Missing)
	unblocks     bool         // addresses freed or sharing needs changed (ipam.Unblocks): waiting Services may fit now
	carried      unsent       // owed by an earlier commit of this Service whose status write failed
	clears       []netip.Addr // our addresses this decision clears from the status of a Service no longer ours
	summary      string
}

type svcEvent struct {
	warning bool
	reason  string
	msg     string
}

// unsent is what a committed decision still owes its Service after the status write
// failed: its Events, and the clearing of addresses from the status of a Service that
// stopped being ours (its allocation is gone, so the retry cannot tell they were ours).
type unsent struct {
	events []peerEvent
	clears []netip.Addr
}

// peerEvent is an Event with the Service it is about: the holder of an address the
// decided Service showed in status (so both hear of the conflict), or an Event kept
// for the retry of a failed status write.
type peerEvent struct {
	ref watchers.ServiceRef
	svcEvent
}

// reconcile is the watcher's handler: decide for the whole batch against one
// snapshot of the committed state, commit all commands in as few Raft entries as
// possible, then write status and Events.
func (s *serviceController) reconcile(ctx context.Context, updates []watchers.Update) map[string]error {
	st := s.node.Status()
	if st.State != "Leader" {
		return nil
	}
	start := time.Now()
	defer func() { s.m.latency.Observe(time.Since(start).Seconds()) }()
	if st.Term != s.barrierTerm {
		if err := s.node.Apply(raftstore.Release{Service: barrierKey}, serviceApplyTimeout); err != nil {
			return failAll(updates, fmt.Errorf("raft barrier: %w", err))
		}
		s.barrierTerm = st.Term
	}
	state := s.node.State()
	if !s.serving(state.LBClass, updates) {
		return nil
	}
	pools, err := poolsFromState(state.Pools)
	if err != nil {
		return failAll(updates, err)
	}
	if len(pools) == 0 && !s.warnedNoPools {
		s.log.Warn("no address pools committed: LoadBalancer Services wait for the leader's --pool flags")
	}
	s.warnedNoPools = len(pools) == 0
	used := ipam.NewUsed(ipamAllocations(state.Allocations))
	slices.SortFunc(updates, func(a, b watchers.Update) int { return compareUpdates(&a, &b) })
	for _, u := range updates {
		if u.View != nil && u.View.Ours {
			used.Reserve(u.Key, u.View.RequestedIPs)
			used.Reserve(u.Key, u.View.Ingress)
		}
	}
	decisions := make([]svcDecision, len(updates))
	for i, u := range updates {
		decisions[i] = s.decide(pools, used, state.Allocations, u)
		delete(s.unsent, u.Key)
	}
	s.m.reconciles.Add(float64(len(updates)))
	errs := s.commit(decisions)
	if s.node.Status().Term != st.Term {
		// Leadership moved while deciding: another leader may have committed in
		// between. Re-deciding everything lets ipam drop any clash that slipped in.
		s.w.Load().RequeueAll()
	}
	written := s.writeStatus(ctx, decisions, errs)
	s.settle(decisions, errs, written)
	s.m.allocations.Set(float64(used.Len()))
	for k, err := range written {
		errs[k] = err
	}
	return errs
}

// settle does what follows a committed decision: the log line, the pending and
// partial bookkeeping and the retries they ask for, at once (the Raft state already
// holds the decision); and its Events, once its status is written too. A failed
// status write keeps them in unsent for the watcher's retry of that Service, so
// kubectl describe never misses an allocation or release. An uncommitted decision
// keeps only what it carried: deciding again yields its own Events again.
func (s *serviceController) settle(decisions []svcDecision, committed, written map[string]error) {
	lastUnblock := -1
	for i := range decisions {
		d := &decisions[i]
		if committed[d.key] != nil {
			if len(d.carried.events)+len(d.carried.clears) > 0 {
				s.unsent[d.key] = d.carried
			}
			continue
		}
		if d.summary != "" {
			s.log.Info(d.summary, "service", d.key, "ips", d.ips)
		}
		if d.unblocks {
			lastUnblock = i
		}
		setFlag(s.pending, d.key, d.pending, d.waits)
		setFlag(s.partial, d.key, d.partial, true)
		events := d.allEvents()
		if err := written[d.key]; err != nil {
			s.log.Warn("service status not written; its Events wait for the retry", "service", d.key, "events", len(events), "err", err)
			s.unsent[d.key] = unsent{events: events, clears: d.clears}
			continue
		}
		for _, e := range events {
			s.out.Load().Event(e.ref, e.warning, e.reason, e.msg)
		}
	}
	s.m.pending.Set(float64(len(s.pending)))
	if lastUnblock >= 0 {
		s.retryWaiting(decisions[lastUnblock+1:])
	}
}

// setFlag keeps key in m with value v while on is true.
func setFlag(m map[string]bool, key string, on, v bool) {
	if on {
		m[key] = v
	} else {
		delete(m, key)
	}
}

// allEvents lists the decision's Events in the order they are sent: those carried
// from a failed status write, its own, then those on other Services.
func (d *svcDecision) allEvents() []peerEvent {
	out := slices.Clone(d.carried.events)
	for _, e := range d.events {
		out = append(out, peerEvent{ref: d.ref, svcEvent: e})
	}
	return append(out, d.peerEvents...)
}

// serving reports whether the batch's views were computed for the committed
// loadBalancerClass. Nothing is decided before a class is committed (the leader
// commits its --lb-class right after winning; committing requeues every Service),
// and when the committed class is not the one the views were computed for, the
// watcher switches to it and the batch is decided again. A leader's own --lb-class
// therefore never releases the allocations of the committed class.
func (s *serviceController) serving(committed *string, updates []watchers.Update) bool {
	if committed == nil {
		if !s.warnedNoClass {
			s.log.Warn("no loadBalancerClass committed yet: LoadBalancer Services wait for the leader to commit its --lb-class")
		}
		s.warnedNoClass = true
		return false
	}
	s.warnedNoClass = false
	w := s.w.Load()
	if w.LBClass() == *committed {
		return true
	}
	s.log.Info("serving the committed loadBalancerClass", "lb_class", *committed, "was", w.LBClass())
	w.SetLBClass(*committed)
	keys := make([]string, len(updates))
	for i, u := range updates {
		keys[i] = u.Key
	}
	w.Requeue(keys...)
	return false
}

func failAll(updates []watchers.Update, err error) map[string]error {
	out := make(map[string]error, len(updates))
	for _, u := range updates {
		out[u.Key] = err
	}
	return out
}

// retryWaiting requeues, after a committed decision unblocked others (freed
// addresses, changed its sharing key, ports or traffic policy, or went away), the
// Services pending on another Service and the PreferDualStack Services holding one
// family. Those decided after it in the same batch (later) already saw the change.
// Services pending for other reasons (a malformed or impossible request) wait for
// their own spec or the pools to change, which requeues them anyway.
func (s *serviceController) retryWaiting(later []svcDecision) {
	var keys []string
	for _, m := range []map[string]bool{s.pending, s.partial} {
		for k, waits := range m {
			if waits && !slices.ContainsFunc(later, func(d svcDecision) bool { return d.key == k }) && !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	if len(keys) > 0 {
		slices.Sort(keys)
		s.w.Load().Requeue(keys...)
	}
}

// decide works out one Service's commands, status and Events, and updates used so
// the next Service in the batch sees this one's addresses.
func (s *serviceController) decide(pools []ipam.Pool, used *ipam.Used, allocs map[string]raftstore.Allocation, u watchers.Update) svcDecision {
	d := svcDecision{key: u.Key}
	ex, had := allocs[u.Key]
	v := u.View
	if v == nil {
		if had {
			ns, name, _ := strings.Cut(u.Key, "/")
			d.ref = watchers.ServiceRef{Namespace: ns, Name: name, UID: types.UID(ex.UID)}
			d.release(used, ex, "the Service was deleted")
		}
		return d
	}
	d.ref = watchers.ServiceRef{Namespace: v.Namespace, Name: v.Name, UID: v.UID}
	d.carried = s.unsent[u.Key]
	if !v.Ours {
		if had {
			d.release(used, ex, s.notOursReason())
			if len(v.Ingress) > 0 && slices.Equal(addrStrings(v.Ingress), ex.IPs) {
				d.writeIngress, d.clears = true, v.Ingress
			}
		} else if len(v.Ingress) > 0 && slices.Equal(d.carried.clears, v.Ingress) {
			d.writeIngress, d.clears = true, v.Ingress
		}
		return d
	}
	var existing *ipam.Allocation
	if had && ex.UID != string(v.UID) {
		// A re-created Service: the old object's allocation goes, silently.
		d.cmds = append(d.cmds, raftstore.Release{Service: u.Key})
		used.Remove(u.Key)
		d.unblocks = len(ex.IPs) > 0
	} else if had {
		a := ipamAllocation(ex)
		existing = &a
	}
	if v.Err != nil {
		msg := v.Err.Error()
		if existing != nil {
			msg += "; keeping " + joinIPs(existing.IPs)
			d.setIngress(v, existing.IPs)
		}
		d.events = append(d.events, svcEvent{warning: true, reason: watchers.ReasonInvalidRequest, msg: msg})
		d.pending = existing == nil
		return d
	}
	if len(pools) == 0 && existing == nil {
		// No pools committed yet (a fresh cluster's leader commits its --pool flags
		// right after winning): wait quietly; committing pools requeues every Service.
		d.pending = true
		return d
	}
	res := ipam.Allocate(pools, used, request(v), existing)
	d.conflictEvents(allocs, res.Conflicts)
	if res.Err != nil {
		d.pending = true
		d.waits = ipam.Waits(res.Err)
		d.events = append(d.events, svcEvent{warning: true, reason: watchers.ReasonAllocationFailed, msg: res.Reason})
		d.summary = "service pending: " + res.Reason
		if res.Changed {
			d.cmds = append(d.cmds, raftstore.Release{Service: u.Key})
			used.Remove(u.Key)
			d.unblocks = ipam.Unblocks(existing, nil)
		}
		d.setIngress(v, nil)
		return d
	}
	switch {
	case res.Changed:
		d.cmds = append(d.cmds, raftstore.Allocate{Allocation: raftAllocation(res.Allocation, v.UID)})
		used.Add(res.Allocation)
		d.events = append(d.events, svcEvent{reason: watchers.ReasonAllocated, msg: res.Reason})
		d.summary = "service allocated: " + res.Reason
		d.unblocks = d.unblocks || ipam.Unblocks(existing, &res.Allocation)
	case res.Reason != "":
		d.events = append(d.events, svcEvent{warning: true, reason: watchers.ReasonOutsidePools, msg: res.Reason})
	}
	d.partial = len(ipam.Missing(request(v), res.Allocation.IPs)) > 0
	d.ips = res.Allocation.IPs
	d.setIngress(v, res.Allocation.IPs)
	return d
}

func (d *svcDecision) release(used *ipam.Used, ex raftstore.Allocation, why string) {
	d.cmds = append(d.cmds, raftstore.Release{Service: ex.Service})
	used.Remove(ex.Service)
	d.unblocks = len(ex.IPs) > 0
	msg := fmt.Sprintf("released %s: %s", strings.Join(ex.IPs, ", "), why)
	d.events = append(d.events, svcEvent{reason: watchers.ReasonReleased, msg: msg})
	d.summary = "service " + msg
}

// setIngress asks for a status write when the Service does not show ips as VIPs.
func (d *svcDecision) setIngress(v *watchers.View, ips []netip.Addr) {
	if !slices.Equal(v.Ingress, ips) || len(ips) > 0 && !v.IngressIsVIP {
		d.writeIngress = true
		d.ingress = ips
	}
}

func (s *serviceController) notOursReason() string {
	class := s.w.Load().LBClass()
	if class == "" {
		return "the Service is no longer of type LoadBalancer without a loadBalancerClass"
	}
	return fmt.Sprintf("the Service is no longer of type LoadBalancer with loadBalancerClass %q", class)
}

// commit applies the batch's commands in as few Raft entries as possible. A failed
// entry fails its Services and every later one (their decisions assumed it), which
// the watcher retries with backoff.
func (s *serviceController) commit(decisions []svcDecision) map[string]error {
	errs := map[string]error{}
	var chunk []raftstore.Command
	first := 0
	flush := func(end int) error {
		if len(chunk) == 0 {
			return nil
		}
		err := s.node.Apply(raftstore.Batch{Commands: chunk}, serviceApplyTimeout)
		if err != nil {
			return fmt.Errorf("commit %d service commands: %w", len(chunk), err)
		}
		s.m.applies.Inc()
		s.m.commands.Add(float64(len(chunk)))
		chunk, first = nil, end
		return nil
	}
	var err error
	for i, d := range decisions {
		if len(chunk)+len(d.cmds) > maxCommandsPerApply {
			if err = flush(i); err != nil {
				break
			}
		}
		chunk = append(chunk, d.cmds...)
	}
	if err == nil {
		err = flush(len(decisions))
	}
	if err != nil {
		s.log.Warn("service decisions not committed; retrying", "services", len(decisions)-first, "err", err)
		for _, d := range decisions[first:] {
			errs[d.key] = err
		}
	}
	return errs
}

// writeStatus patches status.loadBalancer of the committed decisions that need it,
// statusWriters at a time, and returns the writes that failed. A Service deleted
// meanwhile is not an error.
func (s *serviceController) writeStatus(ctx context.Context, decisions []svcDecision, committed map[string]error) map[string]error {
	errs := map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, statusWriters)
	for _, d := range decisions {
		if !d.writeIngress || committed[d.key] != nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := s.out.Load().SetIngress(ctx, d.ref.Namespace, d.ref.Name, d.ingress)
			if apierrors.IsNotFound(err) {
				err = nil
			}
			result := "ok"
			if err != nil {
				result = "error"
				mu.Lock()
				errs[d.key] = err
				mu.Unlock()
			}
			s.m.statuses.WithLabelValues(result).Inc()
		}()
	}
	wg.Wait()
	return errs
}

// compareUpdates orders a batch as ipam.Compare does (requested addresses first,
// then status addresses to adopt), deleted and foreign Services last by key.
func compareUpdates(a, b *watchers.Update) int {
	ao, bo := a.View != nil && a.View.Ours, b.View != nil && b.View.Ours
	switch {
	case ao && bo:
		ra, rb := request(a.View), request(b.View)
		return ipam.Compare(&ra, &rb)
	case ao:
		return -1
	case bo:
		return 1
	}
	return strings.Compare(a.Key, b.Key)
}

// conflictEvents tells the holder of each status address the decided Service could
// not adopt; the decided Service's own Event names the address already.
func (d *svcDecision) conflictEvents(allocs map[string]raftstore.Allocation, conflicts []ipam.Conflict) {
	for _, c := range conflicts {
		ns, name, _ := strings.Cut(c.Holder, "/")
		ref := watchers.ServiceRef{Namespace: ns, Name: name, UID: types.UID(allocs[c.Holder].UID)}
		msg := fmt.Sprintf("%s also shows ip %s in its status; this Service keeps it", d.key, c.IP)
		d.peerEvents = append(d.peerEvents, peerEvent{ref: ref, svcEvent: svcEvent{warning: true, reason: watchers.ReasonAdoptionConflict, msg: msg}})
	}
}
