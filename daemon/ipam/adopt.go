package ipam

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// adopt takes the Service's status addresses as its allocation when it has none: one
// per wanted family, all inside one pool (the named one if set; auto-assign does not
// matter, the address is already live), none held by another Service unless it may
// share. Addresses it cannot take are noted, and those another Service holds become
// Conflicts, so the caller tells both Services.
func (a *allocator) adopt() ([]netip.Addr, string) {
	var out []netip.Addr
	pool := ""
	for _, f := range a.wanted {
		i := slices.IndexFunc(a.req.StatusIPs, func(ip netip.Addr) bool { return familyOf(ip) == f })
		if i < 0 {
			continue
		}
		ip := a.req.StatusIPs[i]
		p := poolOf(a.pools, ip)
		switch {
		case p == nil:
			a.notes = append(a.notes, fmt.Sprintf("status ip %s not adopted: it is in no pool", ip))
			continue
		case a.req.Pool != "" && p.Name != a.req.Pool:
			a.notes = append(a.notes, fmt.Sprintf("status ip %s not adopted: it is in pool %s, not in pool %s the service asks for", ip, p.Name, a.req.Pool))
			continue
		case pool != "" && p.Name != pool:
			a.notes = append(a.notes, fmt.Sprintf("status ip %s not adopted: it is in pool %s while %s is in pool %s", ip, p.Name, out[0], pool))
			continue
		}
		if msg := a.used.clashes(ip, a.req, a.ports); msg != "" {
			holders := a.used.holders[ip]
			a.conflicts = append(a.conflicts, Conflict{IP: ip, Holder: holders[0]})
			a.notes = append(a.notes, fmt.Sprintf("status ip %s not adopted: %s", ip, msg))
			continue
		}
		pool = p.Name
		out = append(out, ip)
	}
	if len(out) > 0 {
		a.adopted = true
	}
	return out, pool
}

// verb is how the summary names keeping addresses: adopted from status, or kept.
func (a *allocator) verb() string {
	if a.adopted {
		return "adopted status "
	}
	return "kept "
}

// Compare orders the requests of one batch for deciding: Services naming addresses
// first (they cannot pick another, an automatic one can), then Services with
// addresses in status to adopt, then the rest; within each, the oldest Service
// first, then by key. So a conflict over one address is won by whoever holds it,
// else by the oldest claimant, the same on every leader.
func Compare(x, y *Request) int {
	return cmp.Or(
		cmp.Compare(x.rank(), y.rank()),
		x.Created.Compare(y.Created),
		strings.Compare(x.Service, y.Service),
	)
}

func (r *Request) rank() int {
	switch {
	case len(r.RequestedIPs) > 0:
		return 0
	case len(r.StatusIPs) > 0:
		return 1
	}
	return 2
}
