package daemon

import (
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// Why a leader hands leadership over (handoverTarget), for its log line.
const (
	handoverAPIDown  = "local kube-apiserver is unhealthy"
	handoverLinkDown = "the control-plane VIP's interface is down here"
)

// handoverTarget decides whether the leader should hand leadership (and with it the
// control-plane VIP) to another voter, to whom, and why. It is a pure function of
// the replicated state so every leader decides alike:
//   - a leader with control-plane VIPs (cpVIPs) whose reported --interface is
//     down hands over: the VIP it holds is unreachable, though Raft (on another
//     network) still works;
//   - a leader whose kube-apiserver is down hands over, except before any API
//     server has ever been healthy (bootstrap);
//   - the target is the first (by name) other voter that is not draining, whose
//     interface is up and, once an API server has been healthy, whose API server
//     is healthy;
//   - no such voter: keep it, moving would not help clients.
func handoverTarget(self string, st raftstore.State, voters []string, cpVIPs bool) (target, why string, ok bool) {
	me, reported := st.Nodes[self]
	switch {
	case cpVIPs && reported && !me.InterfaceUp:
		why = handoverLinkDown
	case st.APIServerEverHealthy && !me.APIServerHealthy:
		why = handoverAPIDown
	default:
		return "", "", false
	}
	candidates := append([]string(nil), voters...)
	sort.Strings(candidates)
	for _, v := range candidates {
		if v == self {
			continue
		}
		n, ok := st.Nodes[v]
		if !ok || n.Draining || !n.InterfaceUp || (st.APIServerEverHealthy && !n.APIServerHealthy) {
			continue
		}
		return v, why, true
	}
	return "", "", false
}

// cpReleaseBudget bounds how long a leader waits for its control-plane VIPs to
// come off the interface before it hands leadership over anyway.
const cpReleaseBudget = 500 * time.Millisecond

// cpReleasePoll is how often that wait looks at the interface.
const cpReleasePoll = 2 * time.Millisecond

// releaseControlPlane is the first phase of a planned handover of leadership
// (an unhealthy local API server, or SIGTERM): the leader stops speaking for the
// control-plane VIPs and waits, bounded, until they are off its interface. Only
// then does the caller transfer leadership, so the new leader never speaks
// while the old one still does. The caller resumes the lease afterwards
// unless the agent is stopping.
func (d *Daemon) releaseControlPlane() {
	d.lease.yield()
	if d.lease == nil || d.holder == nil || len(d.cfg.VIPs) == 0 {
		return
	}
	start := time.Now()
	for holdsAny(d.holder.Held(), d.cfg.VIPs) {
		if time.Since(start) > cpReleaseBudget {
			d.log.Warn("control-plane VIPs still on the interface; handing leadership over anyway", "budget", cpReleaseBudget)
			return
		}
		time.Sleep(cpReleasePoll)
	}
	d.log.Info("released the control-plane VIPs before handing leadership over", "took", time.Since(start).Round(time.Millisecond))
}

// holdsAny reports whether held contains any of vips.
func holdsAny(held, vips []netip.Addr) bool {
	for _, v := range vips {
		if slices.Contains(held, v) {
			return true
		}
	}
	return false
}
