package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/staticpod"
	"github.com/raftvip/raftvip/watchers"
)

const (
	// l2StatusResync is how often the leader rewrites the ServiceL2Status objects
	// even when the owners did not change: it repairs objects someone edited or
	// deleted, and adds owner references to pods that appeared since.
	l2StatusResync = 30 * time.Second
	// l2StatusRetryMin and l2StatusRetryMax bound the backoff after a failed pass.
	l2StatusRetryMin = 500 * time.Millisecond
	l2StatusRetryMax = 30 * time.Second
	// l2StatusWriters is how many object writes run at once.
	l2StatusWriters = 16
)

// l2StatusRaft is what the ServiceL2Status sync needs of the Raft node.
type l2StatusRaft interface {
	IsLeader() bool
	State() raftstore.State
	Changed() <-chan struct{}
}

// l2StatusStore is the API side of the sync; *watchers.L2StatusStore in production.
type l2StatusStore interface {
	List(ctx context.Context) ([]watchers.L2StatusObject, error)
	Pod(ctx context.Context, name string) (watchers.PodRef, error)
	Create(ctx context.Context, st watchers.L2Status, owner watchers.PodRef) (string, error)
	Update(ctx context.Context, o watchers.L2StatusObject, st watchers.L2Status, owner watchers.PodRef) error
	Delete(ctx context.Context, o watchers.L2StatusObject) error
	// WatchChanges signals when a pod of the namespace comes, goes or is
	// replaced, or an object is deleted (watchers.L2StatusStore.WatchChanges).
	WatchChanges(ctx context.Context) <-chan struct{}
}

// l2StatusSync (leader only) keeps one ServiceL2Status object per announcing node and
// Service, exactly matching the replicated owners: it follows every FSM change,
// resyncs every l2StatusResync and on each leadership gain. Workers never talk to the
// API server, so the leader writes the objects of every node, each owned by that
// node's mirror pod.
type l2StatusSync struct {
	node    l2StatusRaft
	store   l2StatusStore
	iface   string
	self    string
	selfPod string
	log     *slog.Logger
	resync  time.Duration
	writes  *prometheus.CounterVec
}

func newL2StatusSync(node l2StatusRaft, store l2StatusStore, cfg *Parsed, log *slog.Logger) *l2StatusSync {
	return &l2StatusSync{
		node:    node,
		store:   store,
		iface:   cfg.Interface,
		self:    cfg.NodeName,
		selfPod: cfg.PodName,
		log:     log.With("component", "l2status"),
		resync:  l2StatusResync,
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raftvip_l2status_writes_total",
			Help: "ServiceL2Status writes by the leader, by operation and result.",
		}, []string{"op", "result"}),
	}
}

// Run syncs until ctx is done. Nothing is written while this node is not the leader.
func (r *l2StatusSync) Run(ctx context.Context) {
	poll := time.NewTicker(leaderPoll)
	defer poll.Stop()
	var synced []watchers.L2Status // what the last successful pass wrote; nil: unknown
	var nextResync, retryAt time.Time
	backoff := l2StatusRetryMin
	changes := r.store.WatchChanges(ctx)
	for {
		changed := r.node.Changed()
		if !r.node.IsLeader() {
			synced = nil
		} else if now := time.Now(); !now.Before(retryAt) {
			want := desiredL2Status(r.node.State(), r.iface)
			if synced == nil || now.After(nextResync) || !slices.EqualFunc(want, synced, equalL2Status) {
				err := r.sync(ctx, want)
				switch {
				case ctx.Err() != nil:
					return
				case errors.Is(err, errLostLeadership):
					synced = nil
				case err != nil:
					if backoff == l2StatusRetryMin {
						r.log.Warn("ServiceL2Status objects not in sync; retrying", "retry_in", backoff, "err", err, "hint", hint(err))
					}
					retryAt, synced = now.Add(backoff), nil
					backoff = min(backoff*2, l2StatusRetryMax)
				default:
					synced, nextResync, backoff, retryAt = want, now.Add(r.resync), l2StatusRetryMin, time.Time{}
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-poll.C:
		case <-changes:
			// A mirror pod was replaced (new UID) or an object went: the next
			// pass re-points owner references or recreates, without the resync.
			synced = nil
		}
	}
}

// errLostLeadership stops a pass whose writes another leader now owns.
var errLostLeadership = errors.New("no longer the raft leader")

// sync makes the objects match want: one pass of list, plan, write.
func (r *l2StatusSync) sync(ctx context.Context, want []watchers.L2Status) error {
	start := time.Now()
	have, err := r.store.List(ctx)
	if err != nil {
		return err
	}
	pods := map[string]watchers.PodRef{}
	for _, st := range want {
		if _, ok := pods[st.Node]; ok {
			continue
		}
		p, err := r.store.Pod(ctx, r.podName(st.Node))
		if err != nil {
			return err
		}
		pods[st.Node] = p
	}
	plan := planL2Status(want, have, pods)
	if plan.empty() {
		return nil
	}
	for node, n := range plan.unowned() {
		r.log.Warn("mirror pod not found: ServiceL2Status objects created without an owner reference will outlive the pod until the owner changes",
			"node", node, "pod", pods[node].Name, "objects", n)
	}
	err = r.apply(ctx, plan)
	r.log.Info("ServiceL2Status objects synced", "created", len(plan.creates), "updated", len(plan.updates),
		"deleted", len(plan.deletes), "err", err, "took", time.Since(start).Round(time.Millisecond))
	return err
}

// apply runs the plan's writes, l2StatusWriters at a time, stopping once this node
// is no longer leader. Deletes go first so a moved Service never shows two nodes
// longer than necessary.
func (r *l2StatusSync) apply(ctx context.Context, p l2Plan) error {
	var jobs []func() (string, error)
	for _, o := range p.deletes {
		jobs = append(jobs, func() (string, error) { return "delete", r.store.Delete(ctx, o) })
	}
	for _, u := range p.updates {
		jobs = append(jobs, func() (string, error) { return "update", r.store.Update(ctx, u.obj, u.want, u.owner) })
	}
	for _, c := range p.creates {
		jobs = append(jobs, func() (string, error) {
			_, err := r.store.Create(ctx, c.want, c.owner)
			return "create", err
		})
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, l2StatusWriters)
	for i, job := range jobs {
		if i == len(p.deletes) {
			// Deletes before creates and updates.
			wg.Wait()
		}
		sem <- struct{}{}
		if !r.node.IsLeader() {
			wg.Wait()
			return errLostLeadership
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			op, err := job()
			result := "ok"
			if err != nil {
				result = "error"
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			r.writes.WithLabelValues(op, result).Inc()
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d ServiceL2Status writes failed, first: %w", len(errs), len(jobs), errs[0])
	}
	return nil
}

// hint says what an operator most likely has to do about a failed pass.
func hint(err error) string {
	switch {
	case apierrors.IsNotFound(err):
		return "apply docs/crd-servicel2status.yaml"
	case apierrors.IsForbidden(err):
		return "apply docs/rbac.yaml in the --namespace of the agents"
	}
	return ""
}

// podName is the mirror pod of node's static pod: this node's own --pod-name, and
// the kubelet's "raftvip-<node>" for the others.
func (r *l2StatusSync) podName(node string) string {
	if node == r.self && r.selfPod != "" {
		return r.selfPod
	}
	return staticpod.PodName + "-" + node
}

// desiredL2Status is, from the replicated state alone, one entry per node and
// Service that node announces, with that Service's VIPs it holds and the
// interfaces they are on (vipInterface), sorted by node then Service. A VIP shared
// by several Services appears in each of their entries; an owned VIP whose
// allocation is already released keeps the Service its owner record names until
// the leader removes the owner.
func desiredL2Status(st raftstore.State, iface string) []watchers.L2Status {
	byIP := map[string][]string{}
	for key, a := range st.Allocations {
		for _, ip := range a.IPs {
			byIP[ip] = append(byIP[ip], key)
		}
	}
	entries := map[string]*watchers.L2Status{}
	for vip, o := range st.Owners {
		svcs := byIP[vip]
		if len(svcs) == 0 && o.Service != "" {
			svcs = []string{o.Service}
		}
		for _, svc := range svcs {
			k := o.Node + " " + svc
			e, ok := entries[k]
			if !ok {
				e = &watchers.L2Status{Node: o.Node, Service: svc}
				entries[k] = e
			}
			e.VIPs = append(e.VIPs, vip)
			if n := vipInterface(st, o, svc, iface); n != "" {
				e.Interfaces = append(e.Interfaces, n)
			}
		}
	}
	out := make([]watchers.L2Status, 0, len(entries))
	for _, e := range entries {
		watchers.SortVIPs(e.VIPs)
		slices.Sort(e.Interfaces)
		e.Interfaces = slices.Compact(e.Interfaces)
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b watchers.L2Status) int { return strings.Compare(a.Key(), b.Key()) })
	return out
}

// vipInterface is the interface a VIP of svc is on at its owner: its pool's
// interface, else the --interface the owner reported, else (a node that reported
// none) the leader's own --interface, which nodes that share a manifest share.
func vipInterface(st raftstore.State, o raftstore.Owner, svc, leaderIface string) string {
	if p := poolInterface(st, st.Allocations[svc].Pool); p != "" {
		return p
	}
	for _, l := range st.Nodes[o.Node].Interfaces {
		if l.Default {
			return l.Name
		}
	}
	return leaderIface
}

func equalL2Status(a, b watchers.L2Status) bool {
	return a.Node == b.Node && a.Service == b.Service && slices.Equal(a.Interfaces, b.Interfaces) && slices.Equal(a.VIPs, b.VIPs)
}

// l2Plan is one pass's writes.
type l2Plan struct {
	creates []l2Write
	updates []l2Write
	deletes []watchers.L2StatusObject
}

type l2Write struct {
	obj   watchers.L2StatusObject // updates only
	want  watchers.L2Status
	owner watchers.PodRef
}

func (p l2Plan) empty() bool { return len(p.creates)+len(p.updates)+len(p.deletes) == 0 }

// unowned counts, per node, the objects this plan creates without an owner.
func (p l2Plan) unowned() map[string]int {
	out := map[string]int{}
	for _, c := range p.creates {
		if c.owner.UID == "" {
			out[c.want.Node]++
		}
	}
	return out
}

// planL2Status compares the wanted entries with the stored objects: each entry keeps
// its first object (by name) and has it updated when its status, labels or owner
// differ; entries without one get created; every other object, duplicates
// included, is deleted. pods holds each wanted node's mirror pod (zero UID when it
// does not exist: new objects get no owner, existing ones keep theirs, so an object
// whose pod was just deleted is still collected with it).
func planL2Status(want []watchers.L2Status, have []watchers.L2StatusObject, pods map[string]watchers.PodRef) l2Plan {
	byKey := map[string]watchers.L2StatusObject{}
	var p l2Plan
	for _, o := range have {
		if _, dup := byKey[o.Key()]; dup || o.Node == "" {
			p.deletes = append(p.deletes, o)
			continue
		}
		byKey[o.Key()] = o
	}
	wanted := map[string]bool{}
	for _, st := range want {
		wanted[st.Key()] = true
		owner := pods[st.Node]
		o, ok := byKey[st.Key()]
		if !ok {
			p.creates = append(p.creates, l2Write{want: st, owner: owner})
			continue
		}
		ownerChanged := owner.UID != "" && o.OwnerUID != owner.UID
		if ownerChanged || !equalL2Status(o.L2Status, st) || !labelsInclude(o.Labels, watchers.L2StatusLabels(st)) {
			p.updates = append(p.updates, l2Write{obj: o, want: st, owner: owner})
		}
	}
	for key, o := range byKey {
		if !wanted[key] {
			p.deletes = append(p.deletes, o)
		}
	}
	slices.SortFunc(p.deletes, func(a, b watchers.L2StatusObject) int { return strings.Compare(a.Name, b.Name) })
	return p
}

func labelsInclude(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// startL2Status starts the ServiceL2Status sync (voters with a kubeconfig, L2 mode);
// without it the agent still runs, only the objects are missing.
func (d *Daemon) startL2Status(start func(string, func(context.Context))) {
	if d.cfg.Namespace == "" {
		d.log.Warn("ServiceL2Status objects disabled: --namespace is empty")
		return
	}
	store, err := watchers.NewL2StatusStore(d.cfg.Kubeconfig, d.cfg.Namespace)
	if err != nil {
		d.log.Error("ServiceL2Status objects disabled", "kubeconfig", d.cfg.Kubeconfig, "err", err)
		return
	}
	s := newL2StatusSync(d.node, store, d.cfg, d.log)
	if err := d.reg.Register(s.writes); err != nil {
		d.log.Error("ServiceL2Status objects disabled", "err", err)
		return
	}
	start("l2status", s.Run)
}
