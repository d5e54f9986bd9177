package raftstore

import "slices"

// Owner returns the owner of vip in the state as applied here, without copying
// the state: announcers ask it right before every packet, many times a second.
func (f *FSM) Owner(vip string) (Owner, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	o, ok := f.state.Owners[vip]
	return o, ok
}

// Advertises reports whether the state as applied here has node among vip's BGP
// advertisers, without copying the state.
func (f *FSM) Advertises(vip, node string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Contains(f.state.Advertisers[vip], node)
}

// Owner returns the owner of vip in the latest applied state; see FSM.Owner.
func (n *Node) Owner(vip string) (Owner, bool) { return n.fsm.Owner(vip) }

// Advertises reports whether node advertises vip in the latest applied state.
func (n *Node) Advertises(vip, node string) bool { return n.fsm.Advertises(vip, node) }

// NodeReport returns node's committed report in the state as applied here,
// without copying the rest of the state: each node checks its own twice a
// second (daemon/reportrefresh.go), and the state grows with the Services.
func (f *FSM) NodeReport(node string) (NodeInfo, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, ok := f.state.Nodes[node]
	return n.clone(), ok
}

// NodeReport returns node's committed report as applied here (FSM.NodeReport).
func (n *Node) NodeReport(node string) (NodeInfo, bool) { return n.fsm.NodeReport(node) }
