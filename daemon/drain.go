package daemon

import (
	"time"
)

// drainBudget bounds how long a stopping node waits for its service VIPs to move.
const drainBudget = 2 * time.Second

// drain asks the leader to move this node's service VIPs elsewhere and waits,
// bounded, until the replicated state no longer gives it any. Each move is a
// planned one in two phases (daemon/handoff): the leader first asks this node to
// release the VIP, the announce loop takes the address off and confirms, and
// only then is the new owner committed, so no two nodes answer for a VIP.
func (d *Daemon) drain(budget time.Duration) {
	if !d.ownsServiceVIPs() {
		return
	}
	d.mu.Lock()
	d.draining = true
	d.mu.Unlock()
	start := time.Now()
	deadline := start.Add(budget)
	for !d.report() {
		if time.Now().After(deadline) {
			d.log.Warn("drain: could not tell the leader; VIPs move after the node-down timeout instead")
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	for d.ownsServiceVIPs() {
		select {
		case <-d.node.Changed():
		case <-time.After(time.Until(deadline)):
			d.log.Warn("drain: VIPs not moved within the budget; removing them anyway", "budget", budget)
			return
		}
	}
	d.log.Info("drained: service VIPs moved to other nodes", "took", time.Since(start).Round(time.Millisecond))
}

func (d *Daemon) ownsServiceVIPs() bool {
	for _, o := range d.node.State().Owners {
		if o.Node == d.cfg.NodeName {
			return true
		}
	}
	return false
}
