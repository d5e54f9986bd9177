package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Allocate decides the addresses of one Service. pools are the configured pools (any
// order), used indexes every committed allocation (it may include existing), req is
// the Service's current spec, and existing its committed allocation or nil. Allocate
// only reads used; the caller commits Result.Allocation and then updates used.
//
// The rules, in order:
//
//   - An existing allocation is kept as long as it still fits the request: an address
//     of a family the Service still wants, in the pool it names (if any), not clashing
//     with a sharer. An address that left every pool (the pool shrank or went away) is
//     kept too, with a Reason for the operator: moving a live VIP breaks clients, so
//     only the operator decides that. Likewise when the pool the Service names was
//     deleted or renamed under it: the address stays until the annotation or the pools
//     are fixed.
//   - Requested IPs are the whole answer: each must be inside a pool (the named one if
//     set), all in one pool, and free or shareable; otherwise Err names the address and
//     its holder.
//   - An address is shareable when every holder uses the same non-empty sharing key
//     and none of the same ports (protocol and number).
//   - New addresses come from the named pool, or else from the auto-assign pools in
//     name order: an address already shared under the Service's sharing key if it
//     may join it, else the lowest free address, ranges in the pool's order.
//   - SingleStack gets its primary family. RequireDualStack needs both families from one
//     pool, or stays Pending. PreferDualStack takes both from the first pool that has
//     both free; failing that the primary family alone, failing that the secondary
//     alone. A PreferDualStack Service holding one family gains the other once its own
//     pool can serve it. If only another pool could, the Service keeps its single
//     address rather than moving to that pool: clients of the live address matter more
//     than the second family, and an allocation comes from one pool. The operator adds
//     the family to the pool (or re-creates the Service) to get the pair.
//   - auto-assign=false only stops a pool from being picked for Services that do not
//     name it; addresses already allocated from it stay, and a PreferDualStack Service
//     there still gains its second family from it.
func Allocate(pools []Pool, used *Used, req Request, existing *Allocation) Result {
	if used == nil {
		used = NewUsed(nil)
	}
	a := &allocator{used: used, req: &req, ports: normPorts(req.Ports), existing: existing}
	a.pools = slices.Clone(pools)
	slices.SortFunc(a.pools, func(x, y Pool) int { return strings.Compare(x.Name, y.Name) })
	ips, pool, err := a.decide()
	if err != nil {
		had := existing != nil && len(existing.IPs) > 0
		reason := err.Error()
		if had {
			reason += "; released " + joinAddrs(existing.IPs)
		}
		return Result{Allocation: Allocation{Service: req.Service}, Changed: had, Reason: reason, Err: err, Conflicts: a.conflicts}
	}
	alloc := Allocation{Service: req.Service, Pool: pool, IPs: ips, SharingKey: req.SharingKey, Ports: a.ports, LocalTraffic: req.LocalTraffic, Selector: req.Selector}
	res := Result{Allocation: alloc, Changed: existing == nil || !existing.equal(&alloc), Conflicts: a.conflicts}
	if res.Changed && existing != nil && slices.Equal(existing.IPs, ips) {
		a.summary = "updated sharing key or ports"
		if existing.Pool != pool {
			a.summary = fmt.Sprintf("%s now belongs to pool %s (was %s)", joinAddrs(ips), pool, existing.Pool)
		}
	}
	notes := a.notes
	if res.Changed && a.summary != "" {
		notes = append([]string{a.summary}, notes...)
	}
	if res.Changed || len(a.stranded) > 0 {
		res.Reason = strings.Join(append(notes, a.stranded...), "; ")
	}
	return res
}

// OutsidePools reports, per Service, the allocated addresses that are in no pool any
// more, so the operator gets an Event to act on (Allocate keeps such addresses).
func OutsidePools(pools []Pool, allocs []Allocation) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for _, al := range allocs {
		for _, ip := range al.IPs {
			if poolOf(pools, ip) == nil {
				out[al.Service] = append(out[al.Service], ip)
			}
		}
	}
	return out
}

type allocator struct {
	pools    []Pool // sorted by name
	used     *Used
	req      *Request
	ports    []Port
	existing *Allocation
	wanted   []Family

	summary   string   // what happened, first part of Reason
	notes     []string // addresses released along the way
	stranded  []string // addresses kept although their pool went away, for the operator
	conflicts []Conflict
	adopted   bool // kept addresses came from status, not from an allocation
}

func poolOf(pools []Pool, ip netip.Addr) *Pool {
	for i := range pools {
		if pools[i].Contains(ip) {
			return &pools[i]
		}
	}
	return nil
}

func (a *allocator) pool(name string) *Pool {
	i, ok := slices.BinarySearchFunc(a.pools, name, func(p Pool, n string) int { return strings.Compare(p.Name, n) })
	if !ok {
		return nil
	}
	return &a.pools[i]
}

func (a *allocator) decide() ([]netip.Addr, string, error) {
	if err := a.validate(); err != nil {
		return nil, "", err
	}
	kept, keptPool := a.keep()
	if len(a.req.RequestedIPs) > 0 {
		return a.requested(kept, keptPool)
	}
	if len(kept) == 0 && a.existing == nil {
		kept, keptPool = a.adopt()
	}
	if len(kept) > 0 {
		missing := a.missing(kept)
		if len(missing) == 0 {
			a.summary = a.verb() + joinAddrs(kept) + " from pool " + keptPool
			return kept, keptPool, nil
		}
		if p := a.pool(keptPool); p != nil && p.has(missing[0]) {
			if ip, ok := a.pick(p, missing[0]); ok {
				a.summary = fmt.Sprintf("added %s %s from pool %s", missing[0], ip, keptPool)
				return a.order(append(kept, ip)), keptPool, nil
			}
		}
		if a.req.Policy == PreferDualStack {
			a.summary = a.verb() + joinAddrs(kept) + " from pool " + keptPool
			return kept, keptPool, nil
		}
		a.notes = append(a.notes, fmt.Sprintf("pool %s cannot add %s to %s", keptPool, missing[0], joinAddrs(kept)))
		a.stranded = nil
	}
	return a.fresh()
}

func (a *allocator) validate() error {
	r := a.req
	if r.Service == "" {
		return fail(ErrInvalidRequest, "request has no service key")
	}
	fams := r.Families
	if len(fams) == 0 {
		fams = []Family{V4}
	}
	if len(fams) > 2 || len(fams) == 2 && fams[0] == fams[1] {
		return fail(ErrInvalidRequest, "ipFamilies %v must list each family at most once", fams)
	}
	for _, f := range fams {
		if f != V4 && f != V6 {
			return fail(ErrInvalidRequest, "unknown ip family %v", f)
		}
	}
	switch r.Policy {
	case SingleStack:
		fams = fams[:1]
	case PreferDualStack:
	case RequireDualStack:
		if len(fams) != 2 {
			return fail(ErrInvalidRequest, "RequireDualStack needs two ipFamilies, got %v", fams)
		}
	default:
		return fail(ErrInvalidRequest, "unknown ipFamilyPolicy %v", r.Policy)
	}
	a.wanted = fams
	seen := map[Family]netip.Addr{}
	for _, ip := range r.RequestedIPs {
		f := familyOf(ip)
		switch {
		case f == 0 || ip.Zone() != "":
			return fail(ErrInvalidRequest, "requested ip %q is not a plain IPv4 or IPv6 address", ip)
		case !slices.Contains(fams, f):
			return fail(ErrInvalidRequest, "requested ip %s is %s but the service (%s) wants %v", ip, f, r.Policy, fams)
		case seen[f].IsValid() && seen[f] != ip:
			return fail(ErrInvalidRequest, "requested ips %s and %s are both %s; a service gets one address per family", seen[f], ip, f)
		}
		seen[f] = ip
	}
	if len(r.RequestedIPs) > 0 && r.Policy == RequireDualStack && len(seen) != 2 {
		return fail(ErrInvalidRequest, "RequireDualStack needs one requested ip of each family, got %s", joinAddrs(r.RequestedIPs))
	}
	return nil
}

// keep returns the existing addresses that still fit the request, primary family
// first, and the pool they count as coming from.
func (a *allocator) keep() ([]netip.Addr, string) {
	ex := a.existing
	if ex == nil {
		return nil, ""
	}
	var kept []netip.Addr
	inPool := ""
	for _, f := range a.wanted {
		i := slices.IndexFunc(ex.IPs, func(ip netip.Addr) bool { return familyOf(ip) == f })
		if i < 0 {
			continue
		}
		ip := ex.IPs[i]
		if msg := a.used.clashes(ip, a.req, a.ports); msg != "" {
			a.release(ip, "%s", msg)
			continue
		}
		p := poolOf(a.pools, ip)
		switch {
		case p == nil && a.req.Pool != "" && a.req.Pool != ex.Pool:
			a.release(ip, "it is in no pool and the service now asks for pool %s", a.req.Pool)
		case p == nil:
			a.strand("ip %s is no longer in any pool; kept until the operator acts", ip)
			kept = append(kept, ip)
		case a.req.Pool != "" && p.Name != a.req.Pool && a.req.Pool == ex.Pool && a.pool(a.req.Pool) == nil:
			a.strand("ip %s: pool %s the service asks for no longer exists (the address is now in pool %s); kept until the operator acts",
				ip, a.req.Pool, p.Name)
			kept = append(kept, ip)
		case a.req.Pool != "" && p.Name != a.req.Pool:
			a.release(ip, "it is in pool %s, not in pool %s the service asks for", p.Name, a.req.Pool)
		case inPool != "" && p.Name != inPool:
			a.release(ip, "it is in pool %s while %s is in pool %s", p.Name, kept[len(kept)-1], inPool)
		default:
			inPool = p.Name
			kept = append(kept, ip)
		}
	}
	for _, ip := range ex.IPs {
		if !slices.Contains(a.wanted, familyOf(ip)) {
			a.release(ip, "the service no longer wants %s", familyOf(ip))
		}
	}
	if inPool == "" {
		inPool = ex.Pool
	}
	return kept, inPool
}

func (a *allocator) strand(format string, args ...any) {
	a.stranded = append(a.stranded, fmt.Sprintf(format, args...))
}

func (a *allocator) release(ip netip.Addr, format string, args ...any) {
	a.notes = append(a.notes, fmt.Sprintf("released %s: ", ip)+fmt.Sprintf(format, args...))
}

func (a *allocator) missing(have []netip.Addr) []Family {
	var out []Family
	for _, f := range a.wanted {
		if !slices.ContainsFunc(have, func(ip netip.Addr) bool { return familyOf(ip) == f }) {
			out = append(out, f)
		}
	}
	return out
}

// order sorts addresses by the Service's family order, primary first.
func (a *allocator) order(ips []netip.Addr) []netip.Addr {
	slices.SortFunc(ips, func(x, y netip.Addr) int {
		return slices.Index(a.wanted, familyOf(x)) - slices.Index(a.wanted, familyOf(y))
	})
	return ips
}

func (a *allocator) requested(kept []netip.Addr, keptPool string) ([]netip.Addr, string, error) {
	want := slices.Clone(a.req.RequestedIPs)
	slices.SortFunc(want, netip.Addr.Compare)
	want = a.order(slices.Compact(want))
	if slices.Equal(want, kept) {
		a.summary = "kept requested " + joinAddrs(kept) + " from pool " + keptPool
		return kept, keptPool, nil
	}
	a.stranded = nil
	pool := ""
	var first netip.Addr
	for _, ip := range want {
		p := poolOf(a.pools, ip)
		switch {
		case p == nil && slices.Contains(kept, ip):
			a.strand("ip %s is no longer in any pool; kept until the operator acts", ip)
			continue
		case p == nil && a.req.Pool != "":
			return nil, "", fail(ErrNotInPool, "requested ip %s is not in pool %s (it is in no pool)", ip, a.req.Pool)
		case p == nil:
			return nil, "", fail(ErrNotInPool, "requested ip %s is not in any pool", ip)
		case a.req.Pool != "" && p.Name != a.req.Pool:
			return nil, "", fail(ErrNotInPool, "requested ip %s is in pool %s, not in pool %s the service asks for", ip, p.Name, a.req.Pool)
		case pool != "" && p.Name != pool:
			return nil, "", fail(ErrNotInPool, "requested ips %s (pool %s) and %s (pool %s) must come from one pool", first, pool, ip, p.Name)
		}
		if msg := a.used.clashes(ip, a.req, a.ports); msg != "" {
			return nil, "", fail(ErrInUse, "requested %s", msg)
		}
		pool, first = p.Name, ip
	}
	if pool == "" {
		pool = keptPool
	}
	a.summary = "allocated requested " + joinAddrs(want) + " from pool " + pool
	return want, pool, nil
}

// candidates are the pools a new address may come from, in the order tried.
func (a *allocator) candidates() ([]*Pool, error) {
	if a.req.Pool != "" {
		p := a.pool(a.req.Pool)
		if p == nil {
			return nil, fail(ErrUnknownPool, "pool %s does not exist", a.req.Pool)
		}
		return []*Pool{p}, nil
	}
	var out []*Pool
	for i := range a.pools {
		if a.pools[i].AutoAssign {
			out = append(out, &a.pools[i])
		}
	}
	if len(out) == 0 {
		return nil, fail(ErrNoFamily, "no pool has auto-assign enabled; name one with raftvip.io/pool")
	}
	return out, nil
}

func (a *allocator) fresh() ([]netip.Addr, string, error) {
	cands, err := a.candidates()
	if err != nil {
		return nil, "", err
	}
	if len(a.wanted) == 2 {
		ips, pool, err := a.pair(cands)
		if err == nil || a.req.Policy == RequireDualStack {
			return ips, pool, err
		}
		for _, f := range a.wanted {
			ip, pool, ferr := a.single(cands, f)
			if ferr == nil {
				a.summary = fmt.Sprintf("allocated %s from pool %s, %s only: %v", ip, pool, f, err)
				return []netip.Addr{ip}, pool, nil
			}
		}
		_, _, err = a.single(cands, a.wanted[0])
		return nil, "", err
	}
	ip, pool, err := a.single(cands, a.wanted[0])
	if err != nil {
		return nil, "", err
	}
	a.summary = fmt.Sprintf("allocated %s from pool %s", ip, pool)
	return []netip.Addr{ip}, pool, nil
}

func (a *allocator) pair(cands []*Pool) ([]netip.Addr, string, error) {
	var why []string
	for _, p := range cands {
		var ips []netip.Addr
		for _, f := range a.wanted {
			if !p.has(f) {
				why = append(why, fmt.Sprintf("%s has no %s range", p.Name, f))
				break
			}
			ip, ok := a.pick(p, f)
			if !ok {
				why = append(why, fmt.Sprintf("%s is exhausted for %s", p.Name, f))
				break
			}
			ips = append(ips, ip)
		}
		if len(ips) == len(a.wanted) {
			a.summary = "allocated " + joinAddrs(ips) + " from pool " + p.Name
			return ips, p.Name, nil
		}
	}
	detail := " (" + strings.Join(why, "; ") + ")"
	if a.req.Pool != "" {
		return nil, "", fail(ErrNoDualStack, "pool %s does not have both IPv4 and IPv6 free addresses%s", a.req.Pool, detail)
	}
	return nil, "", fail(ErrNoDualStack, "no pool has both IPv4 and IPv6 free addresses%s", detail)
}

func (a *allocator) single(cands []*Pool, f Family) (netip.Addr, string, error) {
	var exhausted []string
	for _, p := range cands {
		if !p.has(f) {
			continue
		}
		if ip, ok := a.pick(p, f); ok {
			return ip, p.Name, nil
		}
		exhausted = append(exhausted, p.Name)
	}
	switch {
	case len(exhausted) == 1:
		return netip.Addr{}, "", fail(ErrExhausted, "pool %s exhausted for %s", exhausted[0], f)
	case len(exhausted) > 1:
		return netip.Addr{}, "", fail(ErrExhausted, "pools %s exhausted for %s", strings.Join(exhausted, ", "), f)
	case a.req.Pool != "":
		return netip.Addr{}, "", fail(ErrNoFamily, "pool %s has no %s range", a.req.Pool, f)
	}
	return netip.Addr{}, "", fail(ErrNoFamily, "no auto-assign pool has an %s range", f)
}

// pick chooses an address of family f in pool p: the lowest one already shared under
// the Service's sharing key that it may join, else the lowest free one.
func (a *allocator) pick(p *Pool, f Family) (netip.Addr, bool) {
	fits := func(ip netip.Addr) bool {
		return familyOf(ip) == f && p.Contains(ip) && a.used.clashes(ip, a.req, a.ports) == ""
	}
	if a.req.SharingKey != "" {
		for _, ip := range a.used.sharedUnder(a.req.SharingKey) {
			if fits(ip) {
				return ip, true
			}
		}
	}
	for _, r := range p.Ranges {
		if r.family() != f {
			continue
		}
		if ip, ok := a.used.lowestUnreserved(r, a.req.Service); ok {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

func joinAddrs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}
