package daemon

import (
	"net/netip"
	"slices"

	"github.com/raftvip/raftvip/daemon/assign"
	"github.com/raftvip/raftvip/daemon/ipam"
	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/vip"
)

// announceLinks are the interfaces this node puts VIPs on in L2 mode, each with
// a vip.Holder: its --interface first, then every other interface its --pool
// flags name, sorted, each once.
func announceLinks(def string, pools []ipam.Pool) []string {
	var out []string
	for _, p := range pools {
		if p.Interface != "" && p.Interface != def {
			out = append(out, p.Interface)
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if def != "" {
		out = append([]string{def}, out...)
	}
	return out
}

// fenceTable names the kernel fence tables of iface's Holder: the --interface
// keeps vip.FenceTable, as before there were several, so an upgrade replaces its
// own leftovers; every other interface gets tables of its own.
func fenceTable(iface, def string) string {
	if iface == def {
		return vip.FenceTable
	}
	return vip.FenceTable + "-" + iface
}

// nodeLinks is a node's report as assign reads it: interface → up, with
// assign.DefaultLink for its --interface. A report without interfaces (a node
// that predates them) has only its --interface's InterfaceUp; a node that never
// reported gets nil, the benefit of the doubt.
func nodeLinks(info raftstore.NodeInfo, reported bool) map[string]bool {
	if !reported {
		return nil
	}
	if len(info.Interfaces) == 0 {
		return map[string]bool{assign.DefaultLink: info.InterfaceUp}
	}
	out := make(map[string]bool, len(info.Interfaces)+1)
	for _, l := range info.Interfaces {
		out[l.Name] = l.Up
		if l.Default {
			out[assign.DefaultLink] = l.Up
		}
	}
	if _, ok := out[assign.DefaultLink]; !ok {
		out[assign.DefaultLink] = false
	}
	return out
}

// withLinkState gives every node, for L2 announcing, the links of its last
// report, so the leader moves a pool's VIPs away from a node whose interface of
// that pool is down or missing and gives it none of them (assign.Node.LinkUp).
func withLinkState(nodes []assign.Node, st raftstore.State) []assign.Node {
	for i, n := range nodes {
		info, ok := st.Nodes[n.Name]
		nodes[i].Links = nodeLinks(info, ok)
	}
	return nodes
}

// poolInterface is the interface a pool's VIPs go on, assign.DefaultLink for a
// pool without one or one the state does not know.
func poolInterface(st raftstore.State, pool string) string {
	return st.Pools[pool].Interface
}

// vipLinks sorts the VIPs this node must hold by the interface they go on: a
// service VIP on its pool's interface, everything else (the control-plane VIPs,
// a pool without an interface) on def, this node's --interface.
func vipLinks(want []netip.Addr, st raftstore.State, def string) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for _, a := range want {
		iface := def
		if o, ok := st.Owners[a.String()]; ok {
			if p := poolInterface(st, st.Allocations[o.Service].Pool); p != "" {
				iface = p
			}
		}
		out[iface] = append(out[iface], a)
	}
	return out
}

// localLinks is this node's report of the interfaces it announces on: each
// Holder's link as the kernel has it, the --interface marked Default.
func localLinks(names []string, def string, up func(string) bool) []raftstore.LinkState {
	var out []raftstore.LinkState
	for _, n := range names {
		out = append(out, raftstore.LinkState{Name: n, Up: up(n), Default: n == def})
	}
	return out
}
