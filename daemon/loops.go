package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/raftvip/raftvip/daemon/handoff"
	"github.com/raftvip/raftvip/raftstore"
)

// reportTimeout bounds one health report to the leader.
const reportTimeout = 2 * time.Second

// handoverBackoff stops two leaders with dead API servers from passing leadership back
// and forth faster than an operator can read the logs.
const handoverBackoff = 5 * time.Second

// healthLoop checks the local kube-apiserver and reports every change through Raft,
// retrying until the report is committed.
func (d *Daemon) healthLoop(ctx context.Context) {
	checker, err := newAPIServerChecker(d.cfg.APIServerHealthURL, d.cfg.TLSCACert, d.cfg.APIServerHealthInterval*2)
	if err != nil {
		d.log.Error("apiserver health check disabled", "err", err)
		return
	}
	var tr healthTracker
	dirty := true
	tick := time.NewTicker(d.cfg.APIServerHealthInterval)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, d.cfg.APIServerHealthInterval*2)
		err := checker.check(cctx)
		cancel()
		if tr.observe(err == nil) {
			dirty = true
			healthy := tr.healthy
			d.mu.Lock()
			d.apiHealth = &healthy
			d.mu.Unlock()
			if healthy {
				d.m.apiHealthy.Set(1)
				d.log.Info("local kube-apiserver is healthy", "url", d.cfg.APIServerHealthURL)
			} else {
				d.m.apiHealthy.Set(0)
				d.log.Warn("local kube-apiserver is unhealthy", "url", d.cfg.APIServerHealthURL, "err", err)
			}
		}
		if dirty && tr.known {
			dirty = !d.report()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// report sends this node's view of itself to the leader; false means retry later.
func (d *Daemon) report() bool {
	// The links are read outside the lock: each is a netlink round trip.
	ifUp := d.bgp != nil || (d.holder != nil && interfaceUp(d.cfg.Interface))
	var links []raftstore.LinkState
	if d.bgp == nil {
		links = localLinks(d.holderNames(), d.cfg.Interface, interfaceUp)
	}
	class := d.cfg.LBClass
	d.mu.Lock()
	info := raftstore.NodeInfo{
		Name:             d.cfg.NodeName,
		Address:          d.cfg.RaftAddr,
		Role:             raftstore.RoleVoter,
		APIServerHealthy: d.apiHealth != nil && *d.apiHealth,
		InterfaceUp:      ifUp,
		Interfaces:       links,
		Draining:         d.draining,
		Pools:            committedPools(d.cfg.Pools),
		LBClass:          &class,
		Commands:         raftstore.Supported(),
	}
	d.mu.Unlock()
	if !d.cfg.IsVoter {
		info.Role = raftstore.RoleNonvoter
	}
	if err := d.node.Forward(raftstore.ReportNode{Node: info}, reportTimeout); err != nil {
		d.m.reports.WithLabelValues("error").Inc()
		d.log.Debug("node report not committed yet", "err", err)
		return false
	}
	d.m.reports.WithLabelValues("ok").Inc()
	return true
}

// reportOnce records this node in the replicated state once a leader exists, which
// also clears a Draining flag left by this node's previous run.
func (d *Daemon) reportOnce(ctx context.Context) {
	for !d.report() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// leaderLoop runs the leader's decisions: commit the pools from its flags, hand
// leadership away when its own API server is down while another voter's is up,
// move VIPs away from nodes that are down, and prune workers gone for good.
func (d *Daemon) leaderLoop(ctx context.Context) {
	var lastHandover, leaderSince time.Time
	var drift, nodeGoneHold string
	// releases times the pending releases of planned moves (handoff); a release
	// is timed from when this node first saw it, so a new leader only waits longer.
	var releases handoff.Tracker
	tick := time.NewTicker(max(d.cfg.NodeDownTimeout/6, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.node.Changed():
		case <-tick.C:
		}
		d.health.beat("leader", time.Now())
		if !d.node.IsLeader() || d.node.Halted() != nil {
			leaderSince = time.Time{}
			drift = d.warnPoolDrift(drift)
			d.noteClassDrift(lbClassDrift(d.cfg.LBClass, d.node.State().LBClass))
			continue
		}
		// Nothing is decided before an entry of this term has committed and been
		// applied here: until then the copy of the state may miss what the previous
		// leader committed, and a decision from it could undo one of his.
		if err := d.node.Barrier(reportTimeout); err != nil {
			d.log.Debug("leader barrier not committed yet", "err", err)
			continue
		}
		if leaderSince.IsZero() {
			leaderSince = time.Now()
		}
		if err := d.node.CommitClusterID(reportTimeout); err != nil {
			d.log.Error("commit the cluster id", "err", err)
		}
		st := d.node.State()
		d.syncPools(st)
		servers, err := d.node.Servers()
		if err != nil {
			continue
		}
		d.syncLBClass(st, servers)
		contacts := d.node.PeerContacts(servers)
		if d.cfg.Mode == ModeBGP {
			d.decideAdvertisers(st, servers, contacts, leaderSince)
		} else {
			d.assignOwners(st, servers, contacts, leaderSince, &releases)
		}
		d.pruneWorkers(servers, contacts, leaderSince)
		nodeGoneHold = d.removeDeletedNodes(nodeGoneHold)
		if time.Since(lastHandover) < handoverBackoff {
			continue
		}
		var voters []string
		for _, s := range servers {
			if s.Suffrage == raftstore.SuffrageVoter {
				voters = append(voters, s.ID)
			}
		}
		if target, why, ok := handoverTarget(d.cfg.NodeName, st, voters, len(d.cfg.VIPs) > 0); ok {
			lastHandover = time.Now()
			d.m.handovers.Inc()
			d.log.Warn("handing leadership and the control-plane VIP over", "why", why, "to", target)
			d.releaseControlPlane()
			if err := d.node.TransferLeadership(target); err != nil {
				d.log.Error("leadership handover failed", "to", target, "err", err)
			}
			d.lease.resume()
		}
	}
}

// warnPoolDrift logs once each time this follower's --pool flags start (or stop)
// differing from the committed pools; /raft/status shows it too.
func (d *Daemon) warnPoolDrift(last string) string {
	st := d.node.State()
	if len(st.Pools) == 0 {
		return last
	}
	drift := poolDrift(d.cfg.Pools, st.Pools)
	switch {
	case drift != "" && drift != last:
		d.log.Warn("pool flags differ from the committed pools", "detail", drift)
	case drift == "" && last != "":
		d.log.Info("pool flags match the committed pools again")
	}
	return drift
}

// syncLBClass commits the leader's --lb-class when planLBClass says so, and otherwise
// keeps the committed class and reports the drift: a leader never serves its own
// class against the committed one.
func (d *Daemon) syncLBClass(st raftstore.State, servers []raftstore.Server) {
	var voters []string
	for _, s := range servers {
		if s.Suffrage == raftstore.SuffrageVoter {
			voters = append(voters, s.ID)
		}
	}
	plan := planLBClass(d.cfg.LBClass, st.LBClass, voters, st.Nodes)
	d.noteClassDrift(plan.drift)
	if !plan.commit {
		return
	}
	if err := d.node.Apply(raftstore.SetLBClass{Class: d.cfg.LBClass}, reportTimeout); err != nil {
		d.log.Error("commit lb class", "err", err)
		return
	}
	d.log.Info("committed the loadBalancerClass from this leader's --lb-class", "lb_class", d.cfg.LBClass)
}

// noteClassDrift records the --lb-class drift for /raft/status and logs one line
// each time it starts, changes or ends.
func (d *Daemon) noteClassDrift(drift string) {
	d.mu.Lock()
	last := d.classDrift
	d.classDrift = drift
	d.mu.Unlock()
	switch {
	case drift != "" && drift != last:
		d.log.Warn("lb-class flag differs from the committed class", "detail", drift)
	case drift == "" && last != "":
		d.log.Info("lb-class flag matches the committed class again")
	}
}

// syncPools commits the leader's --pool flags when they differ from the committed set.
func (d *Daemon) syncPools(st raftstore.State) {
	want := committedPools(d.cfg.Pools)
	if poolDrift(d.cfg.Pools, st.Pools) == "" {
		return
	}
	if err := d.node.Apply(raftstore.SetPools{Pools: want}, reportTimeout); err != nil {
		if errors.Is(err, raftstore.ErrFeatureGated) {
			// A rolling upgrade: the committed pools stay until the last member
			// can apply these; logged once per leadership, retried every pass.
			if !d.poolsGatedLogged {
				d.poolsGatedLogged = true
				d.log.Warn("pools from --pool flags wait until every member runs a release that can apply them; the committed pools stay", "err", err)
			}
			return
		}
		d.log.Error("commit pools", "err", err)
		return
	}
	d.poolsGatedLogged = false
	d.log.Info("committed pools from this leader's --pool flags", "pools", len(want))
}
