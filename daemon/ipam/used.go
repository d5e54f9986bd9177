package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
)

// Used indexes the committed allocations of every Service so Allocate answers "who
// holds this address" and "what is the lowest free address of this range" in
// logarithmic time. Build it once with NewUsed and keep it current with Add and Remove
// as allocations are committed; allocating n Services then costs O(n log n), not the
// O(n²) of rescanning every allocation for every Service.
//
// Used is not safe for concurrent use; the leader's reconcile loop owns it.
type Used struct {
	byService map[string]Allocation
	holders   map[netip.Addr][]string        // service keys, sorted
	byKey     map[string]map[netip.Addr]bool // sharing key -> addresses held under it
	runs      []Range                        // maximal runs of held addresses, sorted
	reserved  map[netip.Addr]string          // addresses a Service requests or shows in status
}

// Reserve keeps automatic picks off ips, which service requests or shows in its
// status but does not hold yet: a Service decided earlier must not take the address
// another Service asks for (in this batch, or pending until its holder goes). The
// first reservation of an address wins; Reserve does not mark anything held.
func (u *Used) Reserve(service string, ips []netip.Addr) {
	if u.reserved == nil {
		u.reserved = map[netip.Addr]string{}
	}
	for _, ip := range ips {
		if _, ok := u.reserved[ip]; !ok {
			u.reserved[ip] = service
		}
	}
}

// reservedFor reports whether ip is reserved by a Service other than service.
func (u *Used) reservedFor(ip netip.Addr, service string) bool {
	s, ok := u.reserved[ip]
	return ok && s != service
}

// lowestUnreserved is lowestFree skipping addresses reserved for other Services.
func (u *Used) lowestUnreserved(r Range, service string) (netip.Addr, bool) {
	for {
		ip, ok := u.lowestFree(r)
		if !ok || !u.reservedFor(ip, service) {
			return ip, ok
		}
		if ip == r.Last {
			return netip.Addr{}, false
		}
		r.First = ip.Next()
	}
}

// NewUsed indexes allocs. Service keys are expected to be unique; if one repeats, the
// later allocation replaces the earlier, as with Add.
func NewUsed(allocs []Allocation) *Used {
	u := &Used{
		byService: make(map[string]Allocation, len(allocs)),
		holders:   make(map[netip.Addr][]string, len(allocs)),
		byKey:     map[string]map[netip.Addr]bool{},
	}
	for _, a := range allocs {
		u.Add(a)
	}
	return u
}

// Add records a committed allocation, replacing any earlier one of the same Service.
// The allocation is copied; the caller may reuse its slices.
func (u *Used) Add(a Allocation) {
	u.Remove(a.Service)
	a = a.clone()
	// Drop invalid and repeated addresses, keeping the order (primary family first).
	ips := a.IPs[:0]
	for _, ip := range a.IPs {
		if ip.IsValid() && !slices.Contains(ips, ip) {
			ips = append(ips, ip)
		}
	}
	a.IPs = ips
	u.byService[a.Service] = a
	for _, ip := range a.IPs {
		hs := u.holders[ip]
		if len(hs) == 0 {
			u.runsAdd(ip)
		}
		i, _ := slices.BinarySearch(hs, a.Service)
		u.holders[ip] = slices.Insert(hs, i, a.Service)
		if a.SharingKey != "" {
			if u.byKey[a.SharingKey] == nil {
				u.byKey[a.SharingKey] = map[netip.Addr]bool{}
			}
			u.byKey[a.SharingKey][ip] = true
		}
	}
}

// Remove forgets the Service's allocation, freeing addresses nobody else holds.
func (u *Used) Remove(service string) {
	a, ok := u.byService[service]
	if !ok {
		return
	}
	delete(u.byService, service)
	for _, ip := range a.IPs {
		hs := u.holders[ip]
		if i, found := slices.BinarySearch(hs, service); found {
			hs = slices.Delete(hs, i, i+1)
		}
		if len(hs) == 0 {
			delete(u.holders, ip)
			u.runsRemove(ip)
		} else {
			u.holders[ip] = hs
		}
		if a.SharingKey != "" && !u.heldUnderKey(ip, a.SharingKey) {
			delete(u.byKey[a.SharingKey], ip)
			if len(u.byKey[a.SharingKey]) == 0 {
				delete(u.byKey, a.SharingKey)
			}
		}
	}
}

func (u *Used) heldUnderKey(ip netip.Addr, key string) bool {
	for _, s := range u.holders[ip] {
		if u.byService[s].SharingKey == key {
			return true
		}
	}
	return false
}

// Get returns the Service's committed allocation, the existing argument of Allocate.
func (u *Used) Get(service string) (Allocation, bool) {
	a, ok := u.byService[service]
	return a.clone(), ok
}

// Holders returns the allocations holding ip, sorted by Service: one, or several
// Services sharing the address under one sharing key.
func (u *Used) Holders(ip netip.Addr) []Allocation {
	hs := u.holders[ip]
	if len(hs) == 0 {
		return nil
	}
	out := make([]Allocation, len(hs))
	for i, s := range hs {
		out[i] = u.byService[s].clone()
	}
	return out
}

// Len reports how many Services hold an allocation, for metrics.
func (u *Used) Len() int { return len(u.byService) }

// sharedUnder returns the addresses held under key, sorted.
func (u *Used) sharedUnder(key string) []netip.Addr {
	set := u.byKey[key]
	out := make([]netip.Addr, 0, len(set))
	for ip := range set {
		out = append(out, ip)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// run returns the index of the first run ending at or after ip.
func (u *Used) run(ip netip.Addr) int {
	return sort.Search(len(u.runs), func(i int) bool { return u.runs[i].Last.Compare(ip) >= 0 })
}

func (u *Used) runsAdd(ip netip.Addr) {
	i := u.run(ip)
	if i < len(u.runs) && u.runs[i].First.Compare(ip) <= 0 {
		return
	}
	joinLeft := i > 0 && u.runs[i-1].Last.Next() == ip
	joinRight := i < len(u.runs) && ip.Next() == u.runs[i].First
	switch {
	case joinLeft && joinRight:
		u.runs[i-1].Last = u.runs[i].Last
		u.runs = slices.Delete(u.runs, i, i+1)
	case joinLeft:
		u.runs[i-1].Last = ip
	case joinRight:
		u.runs[i].First = ip
	default:
		u.runs = slices.Insert(u.runs, i, Range{First: ip, Last: ip})
	}
}

func (u *Used) runsRemove(ip netip.Addr) {
	i := u.run(ip)
	if i == len(u.runs) || u.runs[i].First.Compare(ip) > 0 {
		return
	}
	r := u.runs[i]
	switch {
	case r.First == r.Last:
		u.runs = slices.Delete(u.runs, i, i+1)
	case r.First == ip:
		u.runs[i].First = ip.Next()
	case r.Last == ip:
		u.runs[i].Last = ip.Prev()
	default:
		u.runs[i].Last = ip.Prev()
		u.runs = slices.Insert(u.runs, i+1, Range{First: ip.Next(), Last: r.Last})
	}
}

// lowestFree returns the lowest address of r nobody holds. Runs are maximal, so the
// address right after the run covering a candidate is free: one binary search.
func (u *Used) lowestFree(r Range) (netip.Addr, bool) {
	cand := r.First
	i := u.run(cand)
	if i < len(u.runs) && u.runs[i].First.Compare(cand) <= 0 {
		cand = u.runs[i].Last.Next()
	}
	if !cand.IsValid() || !r.Contains(cand) {
		return netip.Addr{}, false
	}
	return cand, true
}

// policyClash says which sharing rule refuses req next to holder h, or "": both
// must be externalTrafficPolicy Cluster, or both must select the same pods.
func policyClash(h *Allocation, req *Request) string {
	if !h.LocalTraffic && !req.LocalTraffic {
		return ""
	}
	if h.Selector != "" && h.Selector == req.Selector {
		return ""
	}
	return "sharing needs both Services externalTrafficPolicy Cluster or the same selector, and one is Local with a different selector"
}

// clashes describes why the Service of req may not hold ip alongside its current
// holders, or returns "" when it may: every other holder must share req's non-empty
// sharing key and use none of its ports.
func (u *Used) clashes(ip netip.Addr, req *Request, ports []Port) string {
	for _, s := range u.holders[ip] {
		if s == req.Service {
			continue
		}
		h := u.byService[s]
		switch {
		case h.SharingKey == "" || req.SharingKey == "":
			return fmt.Sprintf("ip %s is in use by %s", ip, s)
		case h.SharingKey != req.SharingKey:
			return fmt.Sprintf("ip %s is in use by %s under sharing key %q, not %q", ip, s, h.SharingKey, req.SharingKey)
		}
		if why := policyClash(&h, req); why != "" {
			return fmt.Sprintf("ip %s is shared with %s, but %s", ip, s, why)
		}
		if p, ok := portClash(h.Ports, ports); ok {
			return fmt.Sprintf("ip %s is shared with %s, which already uses port %s", ip, s, p)
		}
	}
	return ""
}
