package ipam

import (
	"errors"
	"net/netip"
	"slices"
)

// Waits reports whether a Service left Pending with err can be cured by another
// Service changing: an address freed (pool exhausted, requested or dual-stack pair
// taken) or a holder changing its sharing key, ports or traffic policy (requested
// address in use, port clash, sharing-key conflict). Other errors (a malformed
// request, an unknown pool, a family no pool serves) wait for the Service's own spec
// or the pools to change, which requeue it anyway.
func Waits(err error) bool {
	return errors.Is(err, ErrExhausted) || errors.Is(err, ErrInUse) || errors.Is(err, ErrNoDualStack)
}

// Unblocks reports whether replacing a Service's committed allocation old with next
// (nil: released) may let a waiting Service in: an address of old is no longer held
// by it, or what sharing it needs (key, ports, traffic policy, selector) changed. A
// Service that only gained addresses, or did not change, unblocks nobody, so
// retrying after it would only repeat the same decisions.
func Unblocks(old, next *Allocation) bool {
	switch {
	case old == nil:
		return false
	case next == nil:
		return len(old.IPs) > 0
	}
	for _, ip := range old.IPs {
		if !slices.Contains(next.IPs, ip) {
			return true
		}
	}
	return old.SharingKey != next.SharingKey || old.LocalTraffic != next.LocalTraffic ||
		old.Selector != next.Selector || !slices.Equal(normPorts(old.Ports), normPorts(next.Ports))
}

// Missing returns the families a PreferDualStack Service wants but its allocation
// ips lacks: such a Service gains them as soon as an address of that family is
// free in its pool, so the leader retries it whenever addresses are freed. Other
// policies never hold a partial allocation and get nil.
func Missing(req Request, ips []netip.Addr) []Family {
	if req.Policy != PreferDualStack || len(ips) == 0 {
		return nil
	}
	fams := req.Families
	if len(fams) == 0 {
		fams = []Family{V4}
	}
	var out []Family
	for _, f := range fams {
		if !slices.ContainsFunc(ips, func(ip netip.Addr) bool { return familyOf(ip) == f }) {
			out = append(out, f)
		}
	}
	return out
}
