package daemon

import (
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// The announce loop decides what to hold from a copy of the state, and the
// Holder then sends a first burst and follow-ups 100 ms and 1 s later. The state
// may give the VIP away, or the lease may run out, anywhere in between. So every
// packet asks again, at the moment it is sent, from the latest applied state and
// the clock: does this node still own the VIP, and may it still speak?

// entitledNow is that question as a pure function: a control-plane VIP needs a
// leader within its verified lease (p.leader); a service VIP needs an unfenced
// node that the applied state names as its owner and does not ask to release it.
func entitledNow(self string, v netip.Addr, cpVIPs []netip.Addr, owner raftstore.Owner, owned bool, p passState) bool {
	if slices.Contains(cpVIPs, v) {
		return p.leader
	}
	return !p.fenced && owned && owner.Node == self && !owner.Releasing
}

// entitled is the Holder's vip.Entitled check for this daemon. It reads the FSM without
// copying the state and never blocks on Raft.
func (d *Daemon) entitled(v netip.Addr) bool {
	p := d.lease.apply(decidePass(d.node.IsLeader() && d.node.LeaderReady(), d.lease.verifiedAt(), d.node.LastContact(),
		time.Time{}, time.Now(), d.cfg.Raft.LeaderLease, d.cfg.FenceTimeout))
	o, ok := d.node.Owner(v.String())
	return entitledNow(d.cfg.NodeName, v, d.cfg.VIPs, o, ok, p)
}

// bgpStillEntitled keeps from want only what this node may still advertise at
// the moment it tells the speaker: nothing when fenced now, else the VIPs the
// latest applied state still has it advertise.
func bgpStillEntitled[V any](want map[netip.Addr]V, fencedNow bool, advertises func(netip.Addr) bool) map[netip.Addr]V {
	out := make(map[netip.Addr]V, len(want))
	if fencedNow {
		return out
	}
	for _, v := range slices.SortedFunc(maps.Keys(want), netip.Addr.Compare) {
		if advertises(v) {
			out[v] = want[v]
		}
	}
	return out
}
