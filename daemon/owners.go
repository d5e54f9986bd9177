package daemon

import (
	"net/netip"
	"time"

	"github.com/raftvip/raftvip/daemon/assign"
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
	out := make([]assign.Node, 0, len(servers))
	for _, s := range servers {
		healthy := true
		if s.ID != self {
			last, ok := contacts[s.ID]
			if !ok || last.Before(leaderSince) {
				last = leaderSince
			}
			healthy = now.Sub(last) <= nodeDown
		}
		if info, ok := st.Nodes[s.ID]; ok && info.Draining {
			healthy = false
		}
		out = append(out, assign.Node{Name: s.ID, Healthy: healthy, Excluded: ex[s.ID]})
	}
	return out
}

// withLinkState marks unhealthy, for L2 announcing, every node whose last report
// says its interface is down or missing (or that runs without --interface): it
// cannot announce, so the leader moves its VIPs away and gives it none. A node
// that has not reported yet keeps the benefit of the doubt, as in nodeHealth.
func withLinkState(nodes []assign.Node, st raftstore.State) []assign.Node {
	for i, n := range nodes {
		if info, ok := st.Nodes[n.Name]; ok && !info.InterfaceUp {
			nodes[i].Healthy = false
		}
	}
	return nodes
}

// assignInputs turns the replicated allocations and the Kubernetes endpoint view
// into the ownership decision's inputs. Without a Kubernetes view (no kubeconfig)
// every allocated Service counts as Cluster with endpoints.
func assignInputs(st raftstore.State, eps map[string]endpointInfo) ([]assign.Service, assign.Current) {
	var svcs []assign.Service
	for key, a := range st.Allocations {
		s := assign.Service{Key: key}
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

// assignOwners (leader only) decides who announces each service VIP and commits
// the changes in one batch.
func (d *Daemon) assignOwners(st raftstore.State, servers []raftstore.Server, contacts map[string]time.Time, leaderSince time.Time) {
	var eps map[string]endpointInfo
	var excluded []string
	if d.services != nil {
		if !d.services.Ready() {
			return
		}
		eps, excluded = d.services.Endpoints(), d.services.ExcludedNodes()
	}
	nodes := withLinkState(nodeHealth(d.cfg.NodeName, servers, contacts, leaderSince, time.Now(), d.cfg.NodeDownTimeout, st, excluded), st)
	svcs, cur := assignInputs(st, eps)
	decisions := assign.Assign(svcs, nodes, cur)
	if len(decisions) == 0 {
		return
	}
	start := time.Now()
	if err := d.node.Apply(ownerCommands(decisions), reportTimeout); err != nil {
		d.log.Error("commit VIP owners", "changes", len(decisions), "err", err)
		return
	}
	for _, dec := range decisions {
		d.m.moves.WithLabelValues(dec.Reason).Inc()
		d.log.Info("VIP owner changed", "vip", dec.VIP, "service", dec.Service, "from", dec.From, "to", dec.To, "reason", dec.Reason)
	}
	d.log.Debug("committed VIP owners", "changes", len(decisions), "took", time.Since(start).Round(time.Millisecond))
	if d.services != nil {
		d.services.OwnersChanged(decisions)
	}
}
