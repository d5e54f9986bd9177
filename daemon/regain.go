package daemon

import (
	"net/netip"
	"slices"

	"github.com/raftvip/raftvip/raftstore"
)

// ownedEpochs is the owner epoch of each VIP in held that st gives self; the
// control-plane VIPs have no owner entry and are left out.
func ownedEpochs(self string, held []netip.Addr, st raftstore.State) map[netip.Addr]uint64 {
	out := make(map[netip.Addr]uint64, len(held))
	for _, v := range held {
		if o, ok := st.Owners[v.String()]; ok && o.Node == self {
			out[v] = o.Epoch
		}
	}
	return out
}

// regained lists, sorted, the VIPs held at two consecutive passes whose owner
// epoch changed between them: the leader moves a VIP only to another node, so a
// new epoch with the same owner means it went away and came back in between,
// and the segment may have learnt the other node meanwhile.
func regained(prev, now map[netip.Addr]uint64) []netip.Addr {
	var out []netip.Addr
	for v, e := range now {
		if p, ok := prev[v]; ok && p != e {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
