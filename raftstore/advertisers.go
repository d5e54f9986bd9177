package raftstore

import (
	"slices"
)

// SetAdvertisers records which nodes advertise a VIP over BGP (every eligible node:
// routers spread traffic over all of them). An empty Nodes removes the VIP.
type SetAdvertisers struct {
	VIP   string
	Nodes []string
}

// Type implements Command.
func (SetAdvertisers) Type() CommandType { return TypeAdvertisers }

func (c SetAdvertisers) validate() error {
	if err := validateIP(c.VIP); err != nil {
		return invalid(c.Type(), "%v", err)
	}
	for i, n := range c.Nodes {
		if n == "" {
			return invalid(c.Type(), "vip %s: node %d is empty", c.VIP, i)
		}
	}
	return nil
}

func (c SetAdvertisers) apply(s *State) {
	if len(c.Nodes) == 0 {
		delete(s.Advertisers, c.VIP)
		return
	}
	nodes := slices.Clone(c.Nodes)
	slices.Sort(nodes)
	s.Advertisers[c.VIP] = slices.Compact(nodes)
}
