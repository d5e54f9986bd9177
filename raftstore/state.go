// Package raftstore is raftvip's Raft node: a hashicorp/raft instance with a
// raft-boltdb log and stable store, file snapshots, a mutual-TLS transport and
// the finite state machine that holds what the cluster agreed on (pools,
// allocations, VIP owners, node reports).
//
// The package knows nothing about Kubernetes or network interfaces. The
// daemon decides; this package only makes every node agree on the decisions
// and tells them when the agreed state changed.
package raftstore

import "maps"

// Pool is an address pool as committed by the leader. Ranges are CIDRs or
// "start-end" ranges; their meaning belongs to the daemon's IPAM, the FSM only
// stores them.
type Pool struct {
	Name          string   `json:"name"`
	Ranges        []string `json:"ranges"`
	AutoAssign    bool     `json:"auto_assign"`
	AvoidBuggyIPs bool     `json:"avoid_buggy_ips"`
	// Interface is the link the pool's VIPs go on in L2 mode; "" (and absent,
	// from a leader that predates it) means each node's --interface.
	Interface string `json:"interface,omitempty"`
}

// Allocation records the addresses a Service got, keyed by Service
// ("namespace/name"). UID tells a recreated Service apart from the old one.
type Allocation struct {
	Service    string   `json:"service"`
	UID        string   `json:"uid"`
	Pool       string   `json:"pool"`
	IPs        []string `json:"ips"`
	SharingKey string   `json:"sharing_key,omitempty"`
	Ports      []string `json:"ports,omitempty"`
	// LocalTraffic and Selector decide whether another Service may share the
	// address (ipam.Allocation has the rule).
	LocalTraffic bool   `json:"local_traffic,omitempty"`
	Selector     string `json:"selector,omitempty"`
}

// Owner says which node announces a VIP. Epoch grows by one on every SetOwner
// of that VIP, so an announcer can tell a move from a repeat.
type Owner struct {
	VIP     string `json:"vip"`
	Node    string `json:"node"`
	Epoch   uint64 `json:"epoch"`
	Service string `json:"service,omitempty"`
	// Releasing asks Node to stop announcing the VIP before anyone else may
	// (ReleaseOwner); Released is Node's confirmation that it did (AckRelease).
	Releasing bool `json:"releasing,omitempty"`
	Released  bool `json:"released,omitempty"`
}

// NodeInfo is what a node last reported about itself through the leader.
// Pools carries the node's own --pool flags so the leader can detect drift
// between nodes' configurations.
type NodeInfo struct {
	Name             string `json:"name"`
	Address          string `json:"address"`
	Role             string `json:"role"`
	APIServerHealthy bool   `json:"apiserver_healthy"`
	InterfaceUp      bool   `json:"interface_up"`
	Draining         bool   `json:"draining"`
	Pools            []Pool `json:"pools,omitempty"`
	// LBClass is the node's --lb-class ("" is a value: Services without a class);
	// nil from a node that does not report it.
	LBClass *string `json:"lb_class,omitempty"`
	// Commands lists the features the node can apply (Supported), so the leader
	// writes a new command type or field only once every member can apply it
	// (versions.go). Nil from a node of the release before the reports.
	Commands []string `json:"commands,omitempty"`
	// Interfaces is the link state of every interface the node can put VIPs on:
	// its --interface (Default) and each of its pools' interfaces. Empty from a
	// node that predates it; InterfaceUp still says how its --interface is.
	Interfaces []LinkState `json:"interfaces,omitempty"`
}

// LinkState is one interface of a node as the node last saw it, so the leader
// gives a pool's VIPs only to nodes whose interface of that pool is up.
type LinkState struct {
	Name string `json:"name"`
	Up   bool   `json:"up"`
	// Default marks the node's --interface, where VIPs of pools without an
	// interface of their own go.
	Default bool `json:"default,omitempty"`
}

// Node roles reported in NodeInfo.Role.
const (
	RoleVoter    = "voter"
	RoleNonvoter = "nonvoter"
)

// State is the whole replicated state. Every node's FSM holds an identical
// copy once it has applied the same log prefix.
type State struct {
	Pools                map[string]Pool       `json:"pools"`
	Allocations          map[string]Allocation `json:"allocations"`
	Owners               map[string]Owner      `json:"owners"`
	Nodes                map[string]NodeInfo   `json:"nodes"`
	APIServerEverHealthy bool                  `json:"apiserver_ever_healthy"`
	// Advertisers is, in BGP mode, VIP → the nodes that advertise it (ECMP),
	// sorted. L2 mode uses Owners instead: one node per VIP.
	Advertisers map[string][]string `json:"advertisers"`
	// Epochs is the last epoch each VIP had, kept when its owner is removed, so a
	// VIP withdrawn and later announced again continues its epoch sequence.
	Epochs map[string]uint64 `json:"epochs"`
	// LBClass is the committed loadBalancerClass the leader serves (SetLBClass);
	// nil until the first leader commits one.
	LBClass *string `json:"lb_class,omitempty"`
	// ClusterID is the cluster's ID (SetClusterID, clusterid.go); "" until the
	// first leader commits it, and forever in a cluster bootstrapped before IDs.
	ClusterID string `json:"cluster_id,omitempty"`
	// AppliedIndex is the raft log index this copy reflects, set by the FSM under
	// the same lock as the change (and from the snapshot's index on restore). A
	// reader asking "does what I hold include index N" asks the copy itself, never
	// raft's AppliedIndex, which advances when a batch is queued, not applied.
	// It is not written to snapshots: the snapshot's own index is the same number.
	AppliedIndex uint64 `json:"-"`
}

// NewState returns an empty state with all maps allocated, the form the FSM
// starts from and restores into.
func NewState() State {
	return State{
		Pools:       map[string]Pool{},
		Allocations: map[string]Allocation{},
		Owners:      map[string]Owner{},
		Nodes:       map[string]NodeInfo{},
		Advertisers: map[string][]string{},
		Epochs:      map[string]uint64{},
	}
}

// Clone returns a deep copy, so callers may keep or modify what they read
// without racing the FSM. Nil maps come back allocated and empty.
func (s State) Clone() State {
	c := State{
		Pools:                make(map[string]Pool, len(s.Pools)),
		Allocations:          make(map[string]Allocation, len(s.Allocations)),
		Owners:               maps.Clone(s.Owners),
		Nodes:                make(map[string]NodeInfo, len(s.Nodes)),
		APIServerEverHealthy: s.APIServerEverHealthy,
		Advertisers:          make(map[string][]string, len(s.Advertisers)),
		Epochs:               maps.Clone(s.Epochs),
		LBClass:              cloneClass(s.LBClass),
		ClusterID:            s.ClusterID,
		AppliedIndex:         s.AppliedIndex,
	}
	if c.Epochs == nil {
		c.Epochs = map[string]uint64{}
	}
	for k, v := range s.Advertisers {
		c.Advertisers[k] = cloneStrings(v)
	}
	if c.Owners == nil {
		c.Owners = map[string]Owner{}
	}
	for k, p := range s.Pools {
		c.Pools[k] = p.clone()
	}
	for k, a := range s.Allocations {
		c.Allocations[k] = a.clone()
	}
	for k, n := range s.Nodes {
		c.Nodes[k] = n.clone()
	}
	return c
}

func (p Pool) clone() Pool {
	p.Ranges = cloneStrings(p.Ranges)
	return p
}

func (a Allocation) clone() Allocation {
	a.IPs = cloneStrings(a.IPs)
	a.Ports = cloneStrings(a.Ports)
	return a
}

func (n NodeInfo) clone() NodeInfo {
	n.Pools = clonePools(n.Pools)
	n.LBClass = cloneClass(n.LBClass)
	n.Commands = cloneStrings(n.Commands)
	if len(n.Interfaces) == 0 {
		n.Interfaces = nil
	} else {
		n.Interfaces = append([]LinkState(nil), n.Interfaces...)
	}
	return n
}

// cloneStrings copies a slice and maps empty to nil, the canonical form the
// FSM stores (JSON cannot tell an omitted empty slice from a nil one).
func cloneStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}

func clonePools(ps []Pool) []Pool {
	if len(ps) == 0 {
		return nil
	}
	out := make([]Pool, len(ps))
	for i, p := range ps {
		out[i] = p.clone()
	}
	return out
}

// normalize makes a decoded state canonical: allocated maps, nil for empty
// slices. Restore and snapshot round trips rely on it for exact equality.
func (s *State) normalize() {
	*s = s.Clone()
}
