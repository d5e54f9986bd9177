package daemon

import (
	"net/netip"
	"time"

	"github.com/raftvip/raftvip/daemon/assign"
	"github.com/raftvip/raftvip/daemon/handoff"
	"github.com/raftvip/raftvip/raftstore"
)

// endpointInfo is what the leader needs to know about a Service's endpoints to
// decide who may announce it.
type endpointInfo struct {
	LocalTraffic  bool
	EndpointNodes []string
	HasEndpoints  bool
}

// serviceSource is the leader's Kubernetes view for ownership decisions, and where
// it reports the moves it made (Events, ServiceL2Status).
type serviceSource interface {
	// Ready is false until the caches are synced: before that a missing endpoint
	// means "not seen yet", not "none", and nothing may move because of it.
	Ready() bool
	Endpoints() map[string]endpointInfo
	ExcludedNodes() []string
	// DeletedNodes maps Nodes seen deleted (and not created again) to when: the
	// leader removes their Raft members.
	DeletedNodes() map[string]time.Time
	OwnersChanged(decisions []assign.Decision)
	// AdvertisersChanged reports the BGP advertiser sets the leader just committed
	// (bgp mode), so a Service's Events say which nodes route its VIPs.
	AdvertisersChanged(changes []advertiserChange)
}

// nodeHealth is the leader's view of which servers may announce: itself, and every
// other server that answered within the node-down timeout (counted from when this
// node became leader for servers it has not heard from yet), unless it is draining.
func nodeHealth(self string, servers []raftstore.Server, contacts map[string]time.Time, leaderSince, now time.Time,
	nodeDown time.Duration, st raftstore.State, excluded []string) []assign.Node {
	ex := map[string]bool{}
	for _, n := range excluded {
		ex[n] = true
	}
	up := reachable(self, servers, contacts, leaderSince, now, nodeDown)
	out := make([]assign.Node, 0, len(servers))
	for _, s := range servers {
		healthy := up[s.ID]
		if info, ok := st.Nodes[s.ID]; ok && info.Draining {
			healthy = false
		}
		out = append(out, assign.Node{Name: s.ID, Healthy: healthy, Excluded: ex[s.ID]})
	}
	return out
}

// reachable is the set of servers the leader heard from within the node-down
// timeout (itself always). A node outside it is down: its fence has silenced it,
// so its VIPs move in one step; a node inside it is alive and must release first.
func reachable(self string, servers []raftstore.Server, contacts map[string]time.Time, leaderSince, now time.Time,
	nodeDown time.Duration) map[string]bool {
	out := make(map[string]bool, len(servers))
	for _, s := range servers {
		if s.ID == self {
			out[s.ID] = true
			continue
		}
		last, ok := contacts[s.ID]
		if !ok || last.Before(leaderSince) {
			last = leaderSince
		}
		out[s.ID] = now.Sub(last) <= nodeDown
	}
	return out
}

// assignInputs turns the replicated allocations and the Kubernetes endpoint view
// into the ownership decision's inputs. Without a Kubernetes view (no kubeconfig)
// every allocated Service counts as Cluster with endpoints.
func assignInputs(st raftstore.State, eps map[string]endpointInfo) ([]assign.Service, assign.Current) {
	var svcs []assign.Service
	for key, a := range st.Allocations {
		s := assign.Service{Key: key, Interface: poolInterface(st, a.Pool)}
		for _, ip := range a.IPs {
			if addr, err := netip.ParseAddr(ip); err == nil {
				s.VIPs = append(s.VIPs, addr)
			}
		}
		if eps == nil {
			s.HasUsableEndpoint = true
		} else if info, ok := eps[key]; ok {
			s.LocalTraffic, s.EndpointNodes, s.HasUsableEndpoint = info.LocalTraffic, info.EndpointNodes, info.HasEndpoints
		}
		svcs = append(svcs, s)
	}
	cur := assign.Current{}
	for vip, o := range st.Owners {
		if addr, err := netip.ParseAddr(vip); err == nil {
			cur[addr] = assign.Owner{Node: o.Node, Epoch: o.Epoch}
		}
	}
	return svcs, cur
}

// handoffOwners is the replicated owner table as handoff reads it.
func handoffOwners(st raftstore.State) map[netip.Addr]handoff.Owner {
	out := make(map[netip.Addr]handoff.Owner, len(st.Owners))
	for vip, o := range st.Owners {
		if addr, err := netip.ParseAddr(vip); err == nil {
			out[addr] = handoff.Owner{Node: o.Node, Epoch: o.Epoch, Service: o.Service, Releasing: o.Releasing, Released: o.Released}
		}
	}
	return out
}

// releaseWait is how old an unconfirmed release must be before the new owner may
// be committed: the old owner's kernel lease for service VIPs (the fence
// timeout), plus the commit timeout within which it learns of the release and
// one announce pass that may still renew the lease from the state before it.
func releaseWait(cfg *Parsed) time.Duration {
	return cfg.FenceTimeout + cfg.Raft.Commit + announceCheckInterval(cfg)
}

// ownerCommands turns decisions into one Raft batch.
func ownerCommands(ds []assign.Decision) raftstore.Batch {
	var b raftstore.Batch
	for _, d := range ds {
		if d.To == "" {
			b.Commands = append(b.Commands, raftstore.RemoveOwner{VIP: d.VIP.String()})
		} else {
			b.Commands = append(b.Commands, raftstore.SetOwner{VIP: d.VIP.String(), Node: d.To, Service: d.Service})
		}
	}
	return b
}

// planCommands turns a handoff plan into one Raft batch: the releases, then the
// owner changes (never both for one VIP).
func planCommands(p handoff.Plan) raftstore.Batch {
	var b raftstore.Batch
	for _, d := range p.Release {
		b.Commands = append(b.Commands, raftstore.ReleaseOwner{VIP: d.VIP.String()})
	}
	b.Commands = append(b.Commands, ownerCommands(commitDecisions(p)).Commands...)
	return b
}

func commitDecisions(p handoff.Plan) []assign.Decision {
	out := make([]assign.Decision, len(p.Commit))
	for i, c := range p.Commit {
		out[i] = c.Decision
	}
	return out
}

// announcerChanges are the plan's commits that change who announces a VIP: the
// moves counted and reported as Events. A release taken back keeps its announcer.
func announcerChanges(p handoff.Plan) []assign.Decision {
	var out []assign.Decision
	for _, c := range p.Commit {
		if c.From != c.To {
			out = append(out, c.Decision)
		}
	}
	return out
}

// assignOwners (leader only) decides who announces each service VIP and commits
// the next step towards it in one batch: a planned move first asks the old owner
// to release (handoff), a move away from a down node commits the new owner at once.
func (d *Daemon) assignOwners(st raftstore.State, servers []raftstore.Server, contacts map[string]time.Time, leaderSince time.Time,
	releases *handoff.Tracker) {
	var eps map[string]endpointInfo
	var excluded []string
	if d.services != nil {
		if !d.services.Ready() {
			return
		}
		eps, excluded = d.services.Endpoints(), d.services.ExcludedNodes()
	}
	now := time.Now()
	nodes := withLinkState(nodeHealth(d.cfg.NodeName, servers, contacts, leaderSince, now, d.cfg.NodeDownTimeout, st, excluded), st)
	up := reachable(d.cfg.NodeName, servers, contacts, leaderSince, now, d.cfg.NodeDownTimeout)
	svcs, cur := assignInputs(st, eps)
	owners := handoffOwners(st)
	plan := handoff.Next(handoff.Input{
		Owners: owners,
		Moves:  assign.Assign(svcs, nodes, cur),
		Down:   func(n string) bool { return !up[n] },
		Since:  releases.Observe(owners, now),
		Now:    now,
		Wait:   releaseWait(d.cfg),
	})
	if len(plan.Release) == 0 && len(plan.Commit) == 0 {
		return
	}
	start := time.Now()
	if err := d.node.Apply(planCommands(plan), reportTimeout); err != nil {
		d.log.Error("commit VIP owners", "releases", len(plan.Release), "changes", len(plan.Commit), "err", err)
		return
	}
	for _, r := range plan.Release {
		d.log.Info("VIP release requested: the owner stops announcing before the new one may start", "vip", r.VIP, "service", r.Service,
			"from", r.From, "to", r.To, "reason", r.Reason)
	}
	for _, c := range plan.Commit {
		d.log.Info("VIP owner changed", "vip", c.VIP, "service", c.Service, "from", c.From, "to", c.To, "reason", c.Reason, "handoff", c.Via)
	}
	moves := announcerChanges(plan)
	for _, m := range moves {
		d.m.moves.WithLabelValues(m.Reason).Inc()
	}
	d.log.Debug("committed VIP owners", "releases", len(plan.Release), "changes", len(plan.Commit), "took", time.Since(start).Round(time.Millisecond))
	if d.services != nil && len(moves) > 0 {
		d.services.OwnersChanged(moves)
	}
}
