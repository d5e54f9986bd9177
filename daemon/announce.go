package daemon

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// desiredVIPs is what this node must hold on its interface right now, from the
// replicated state alone:
//   - the control-plane VIPs while it is the Raft leader;
//   - the service VIPs the FSM says it owns, while it is the leader (whose own
//     VIPs follow its lease) or has heard from a leader within the fence timeout.
//
// A node cut off from the leader therefore goes silent after the fence timeout,
// before the leader's (longer) node-down timeout lets anyone else take its VIPs.
func desiredVIPs(self string, leader, fenced bool, cpVIPs []netip.Addr, st raftstore.State) []netip.Addr {
	var out []netip.Addr
	if leader {
		out = append(out, cpVIPs...)
	}
	if leader || !fenced {
		for vip, o := range st.Owners {
			if o.Node != self {
				continue
			}
			if a, err := netip.ParseAddr(vip); err == nil {
				out = append(out, a)
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}

// fenced reports whether a follower has gone too long without a leader.
func fenced(lastContact time.Time, fence time.Duration, now time.Time) bool {
	return lastContact.IsZero() || now.Sub(lastContact) > fence
}

// announceLoop makes the interface match desiredVIPs, on every leadership change,
// every FSM change, and often enough to notice the fence timeout passing.
func (d *Daemon) announceLoop(ctx context.Context) {
	if d.holder == nil {
		return
	}
	changes := d.node.LeadershipChanges()
	check := time.NewTicker(max(d.cfg.FenceTimeout/6, 10*time.Millisecond))
	defer check.Stop()
	wasLeader, wasFenced := false, true
	for {
		leader := d.node.IsLeader()
		isFenced := !leader && fenced(d.node.LastContact(), d.cfg.FenceTimeout, time.Now())
		want := desiredVIPs(d.cfg.NodeName, leader, isFenced, d.cfg.VIPs, d.node.State())
		if !slices.Equal(sortedAddrs(d.holder.Held()), want) {
			if err := d.holder.Set(want); err != nil {
				d.log.Error("make the interface match the replicated state", "want", want, "err", err)
			} else {
				d.logTransition(leader, wasLeader, isFenced, wasFenced, want)
			}
		}
		wasLeader, wasFenced = leader, isFenced
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case <-d.node.Changed():
		case <-check.C:
		}
	}
}

// logTransition says why the held set changed, one line per event that matters.
func (d *Daemon) logTransition(leader, wasLeader, isFenced, wasFenced bool, held []netip.Addr) {
	switch {
	case leader && !wasLeader:
		if len(d.cfg.VIPs) > 0 {
			d.m.failovers.Inc()
		}
		d.log.Info("became raft leader: holding the control-plane VIPs and this node's service VIPs", "held", held)
	case !leader && wasLeader:
		d.log.Info("no longer raft leader: released the control-plane VIPs", "held", held)
	case isFenced && !wasFenced:
		d.log.Warn("no word from a leader within the fence timeout: released all service VIPs", "fence_timeout", d.cfg.FenceTimeout)
	default:
		d.log.Info("VIPs held here changed", "held", held)
	}
}
