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
