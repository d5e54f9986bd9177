// Package ipam decides which addresses of which pool each LoadBalancer Service gets.
//
// It is pure: no I/O, no Kubernetes types, no clocks, no randomness. The leader feeds
// it the pools (from --pool flags, replicated in the FSM), the allocations already
// committed, and one Service's request, and commits whatever Allocate returns. The same
// inputs always give the same answer, whichever leader asks and in whatever order the
// inputs arrive, so a restart or a new leader never reshuffles addresses.
//
// # Pool syntax
//
// A pool is given as
//
//	NAME=RANGE[,RANGE...][;OPTION=VALUE...]
//
// NAME is a DNS label (lower-case letters, digits and '-', at most 63 characters), the
// value of the raftvip.io/pool annotation. Each RANGE is one of
//
//	10.0.0.0/24                  a CIDR (host bits must be zero)
//	10.0.0.10-10.0.0.20          an inclusive start-end range, both ends of one family
//	2001:db8::/112               IPv6 works the same way
//	10.0.0.7                     a single address
//
// A pool may mix IPv4 and IPv6 ranges; such a pool can serve dual-stack Services.
// Options:
//
//	auto-assign=false                Services only get addresses from this pool when
//	                                 they name it (raftvip.io/pool) or request one of
//	                                 its addresses. Default true.
//	include-network-broadcast=true   Also hand out the network and broadcast address
//	                                 of IPv4 CIDRs and the subnet-router anycast
//	                                 address of IPv6 CIDRs. Default false: a /24
//	                                 yields .1-.254, a /120 yields ::1-::ff.
//	interface=IFACE                  L2 mode: announce this pool's VIPs on IFACE (a
//	                                 VLAN or second NIC) instead of --interface; only
//	                                 nodes whose IFACE is up get them.
//
// The network/broadcast rule applies to IPv4 CIDRs of /30 and shorter only: /31 and /32
// have no such addresses (RFC 3021), start-end ranges are taken literally. IPv6 has no
// broadcast, but the all-zero host address of a prefix is the subnet-router anycast
// address (RFC 4291 2.6.1), which routers answer; it is skipped for /126 and shorter
// (/127 links have none, RFC 6164; a /128 is one address). It is deliberately not MetalLB's avoid-buggy-ips, which skips every
// address ending in .0 or .255 even inside a range: here what the operator wrote as a
// range is what gets handed out.
//
// Ranges must not overlap, within a pool or across pools, so every address belongs to
// at most one pool and an allocation's pool is never ambiguous.
package ipam

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Range is an inclusive span of addresses of one family. For a CIDR pool it holds the
// addresses that may be handed out (network/broadcast already removed), so Contains
// and the allocator agree on what a pool offers.
type Range struct{ First, Last netip.Addr }

// String prints the range the way the pool syntax accepts it.
func (r Range) String() string {
	if r.First == r.Last {
		return r.First.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

// Contains reports whether ip falls inside the range.
func (r Range) Contains(ip netip.Addr) bool {
	return ip.BitLen() == r.First.BitLen() && r.First.Compare(ip) <= 0 && ip.Compare(r.Last) <= 0
}

func (r Range) overlaps(o Range) bool {
	return r.First.BitLen() == o.First.BitLen() && r.First.Compare(o.Last) <= 0 && o.First.Compare(r.Last) <= 0
}

func (r Range) family() Family { return familyOf(r.First) }

// Pool is a named set of address ranges Services are allocated from. It is what the
// FSM replicates and what the allocator reads; Spec keeps the operator's text so status
// output and errors can show it verbatim.
type Pool struct {
	Name                    string
	Ranges                  []Range
	AutoAssign              bool
	IncludeNetworkBroadcast bool
	// Interface is the link this pool's VIPs go on in L2 mode (option interface=);
	// "" means each node's --interface.
	Interface string
	Spec      string
}

// Contains reports whether ip is one of the addresses the pool hands out.
func (p Pool) Contains(ip netip.Addr) bool {
	for _, r := range p.Ranges {
		if r.Contains(ip) {
			return true
		}
	}
	return false
}

// Families reports which address families the pool can serve; a pool with both can
// give a dual-stack Service its pair.
func (p Pool) Families() (v4, v6 bool) {
	for _, r := range p.Ranges {
		if r.First.Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6
}

func (p Pool) has(f Family) bool {
	v4, v6 := p.Families()
	if f == V4 {
		return v4
	}
	return v6
}

// Size counts the addresses the pool hands out per family, for capacity metrics and
// status. A count that does not fit in 64 bits (an IPv6 /64 or larger) saturates at
// math.MaxUint64.
func (p Pool) Size() (v4, v6 uint64) {
	for _, r := range p.Ranges {
		n := rangeSize(r)
		if r.First.Is4() {
			v4 = addSat(v4, n)
		} else {
			v6 = addSat(v6, n)
		}
	}
	return v4, v6
}

func rangeSize(r Range) uint64 {
	a, b := r.First.As16(), r.Last.As16()
	hiA, loA := be64(a[:8]), be64(a[8:])
	hiB, loB := be64(b[:8]), be64(b[8:])
	lo := loB - loA
	borrow := uint64(0)
	if loB < loA {
		borrow = 1
	}
	if hiB-hiA-borrow != 0 || lo == math.MaxUint64 {
		return math.MaxUint64
	}
	return lo + 1
}

func be64(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}

func addSat(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

// ErrBadPool is wrapped by every ParsePool, ParsePools and ValidatePools error so
// callers can tell configuration mistakes from other failures.
var ErrBadPool = errors.New("invalid pool")

// ParsePool parses one --pool value (syntax in the package comment). The error quotes
// the value and names the part that is wrong.
func ParsePool(flag string) (Pool, error) {
	p, err := parsePool(flag)
	if err != nil {
		return Pool{}, fmt.Errorf("%w %q: %w", ErrBadPool, flag, err)
	}
	return p, nil
}

func parsePool(flag string) (Pool, error) {
	name, rest, ok := strings.Cut(flag, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.TrimSpace(rest) == "" {
		return Pool{}, errors.New("want NAME=RANGE[,RANGE...][;OPTION=VALUE...]")
	}
	if err := checkName(name); err != nil {
		return Pool{}, err
	}
	p := Pool{Name: name, AutoAssign: true, Spec: flag}
	parts := strings.Split(rest, ";")
	for _, opt := range parts[1:] {
		if err := p.setOption(strings.TrimSpace(opt)); err != nil {
			return Pool{}, err
		}
	}
	for _, raw := range strings.Split(parts[0], ",") {
		r, err := parseRange(strings.TrimSpace(raw), p.IncludeNetworkBroadcast)
		if err != nil {
			return Pool{}, err
		}
		p.Ranges = append(p.Ranges, r)
	}
	if err := checkOverlaps([]Pool{p}); err != nil {
		return Pool{}, err
	}
	return p, nil
}

func checkName(name string) error {
	if len(name) > 63 {
		return fmt.Errorf("pool name %q is longer than 63 characters", name)
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(name)-1
		if !ok {
			return fmt.Errorf("pool name %q must be a DNS label: lower-case letters, digits and inner '-'", name)
		}
	}
	return nil
}

func (p *Pool) setOption(opt string) error {
	key, val, ok := strings.Cut(opt, "=")
	if !ok {
		return fmt.Errorf("option %q: want OPTION=VALUE", opt)
	}
	key, val = strings.TrimSpace(key), strings.TrimSpace(val)
	if key == "interface" {
		if err := checkInterfaceName(val); err != nil {
			return fmt.Errorf("option %q: %w", opt, err)
		}
		p.Interface = val
		return nil
	}
	b, err := strconv.ParseBool(val)
	if err != nil {
		return fmt.Errorf("option %q: value must be true or false", opt)
	}
	switch key {
	case "auto-assign":
		p.AutoAssign = b
	case "include-network-broadcast":
		p.IncludeNetworkBroadcast = b
	default:
		return fmt.Errorf("unknown option %q (known: auto-assign, include-network-broadcast, interface)", key)
	}
	return nil
}

// maxInterfaceName is the longest Linux interface name (IFNAMSIZ less the NUL).
const maxInterfaceName = 15

// checkInterfaceName refuses what the kernel would refuse as a link name, so a
// typo fails at start rather than when the first VIP of the pool is announced.
func checkInterfaceName(name string) error {
	switch {
	case name == "":
		return errors.New("interface name is empty")
	case len(name) > maxInterfaceName:
		return fmt.Errorf("interface name %q is longer than %d characters", name, maxInterfaceName)
	case name == "." || name == "..":
		return fmt.Errorf("interface name %q is not allowed", name)
	case strings.ContainsAny(name, "/:,; \t\n"):
		return fmt.Errorf("interface name %q contains '/', ':', ',', ';' or white space", name)
	}
	return nil
}

func parseRange(s string, includeNetBcast bool) (Range, error) {
	if s == "" {
		return Range{}, errors.New("empty range (stray ',')")
	}
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return Range{}, fmt.Errorf("range %q is not a valid CIDR", s)
		}
		if err := checkAddr(s, pfx.Addr()); err != nil {
			return Range{}, err
		}
		if pfx.Masked() != pfx {
			return Range{}, fmt.Errorf("range %q has host bits set; did you mean %s?", s, pfx.Masked())
		}
		r := Range{First: pfx.Addr(), Last: lastOf(pfx)}
		switch {
		case includeNetBcast:
		case pfx.Addr().Is4() && pfx.Bits() <= 30:
			r = Range{First: r.First.Next(), Last: r.Last.Prev()}
		case pfx.Addr().Is6() && pfx.Bits() <= 126:
			r.First = r.First.Next()
		}
		return r, nil
	}
	if first, last, ok := strings.Cut(s, "-"); ok {
		a, errA := netip.ParseAddr(strings.TrimSpace(first))
		b, errB := netip.ParseAddr(strings.TrimSpace(last))
		if errA != nil || errB != nil {
			return Range{}, fmt.Errorf("range %q: want START-END with two IP addresses", s)
		}
		if err := checkAddr(s, a); err != nil {
			return Range{}, err
		}
		if err := checkAddr(s, b); err != nil {
			return Range{}, err
		}
		if a.Is4() != b.Is4() {
			return Range{}, fmt.Errorf("range %q mixes IPv4 and IPv6", s)
		}
		if a.Compare(b) > 0 {
			return Range{}, fmt.Errorf("range %q starts after it ends", s)
		}
		return Range{First: a, Last: b}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return Range{}, fmt.Errorf("range %q is neither a CIDR, a START-END range nor an IP address", s)
	}
	if err := checkAddr(s, a); err != nil {
		return Range{}, err
	}
	return Range{First: a, Last: a}, nil
}

func checkAddr(s string, a netip.Addr) error {
	if a.Zone() != "" {
		return fmt.Errorf("range %q: addresses must not carry a zone", s)
	}
	if a.Is4In6() {
		return fmt.Errorf("range %q: write IPv4-mapped addresses as plain IPv4", s)
	}
	return nil
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	host := p.Addr().BitLen() - p.Bits()
	for i := 15; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}

// ParsePools parses every --pool value and checks them together: pool names are
// unique and no address belongs to two ranges. The pools come back sorted by name,
// the order the allocator tries them in.
func ParsePools(flags []string) ([]Pool, error) {
	pools := make([]Pool, 0, len(flags))
	for _, f := range flags {
		p, err := ParsePool(f)
		if err != nil {
			return nil, err
		}
		pools = append(pools, p)
	}
	if err := ValidatePools(pools); err != nil {
		return nil, err
	}
	slices.SortFunc(pools, func(a, b Pool) int { return strings.Compare(a.Name, b.Name) })
	return pools, nil
}

// ValidatePools checks pools however they were built (flags, a restored snapshot):
// valid names, non-empty well-formed ranges, unique names, no overlapping ranges.
// Allocate relies on these properties.
func ValidatePools(pools []Pool) error {
	seen := map[string]bool{}
	for _, p := range pools {
		if err := checkName(p.Name); err != nil {
			return fmt.Errorf("%w: %w", ErrBadPool, err)
		}
		if seen[p.Name] {
			return fmt.Errorf("%w: pool name %q is used twice", ErrBadPool, p.Name)
		}
		seen[p.Name] = true
		if len(p.Ranges) == 0 {
			return fmt.Errorf("%w: pool %q has no ranges", ErrBadPool, p.Name)
		}
		for _, r := range p.Ranges {
			if !r.First.IsValid() || r.First.BitLen() != r.Last.BitLen() || r.First.Compare(r.Last) > 0 ||
				r.First.Zone() != "" || r.Last.Zone() != "" || r.First.Is4In6() || r.Last.Is4In6() {
				return fmt.Errorf("%w: pool %q: malformed range %s", ErrBadPool, p.Name, r)
			}
		}
	}
	if err := checkOverlaps(pools); err != nil {
		return fmt.Errorf("%w: %w", ErrBadPool, err)
	}
	return nil
}

// checkOverlaps sorts every range of every pool by start address and compares
// neighbours, so n ranges cost O(n log n).
func checkOverlaps(pools []Pool) error {
	type owned struct {
		pool string
		r    Range
	}
	var all []owned
	for _, p := range pools {
		for _, r := range p.Ranges {
			all = append(all, owned{p.Name, r})
		}
	}
	slices.SortFunc(all, func(a, b owned) int {
		if c := a.r.First.Compare(b.r.First); c != 0 {
			return c
		}
		return strings.Compare(a.pool, b.pool)
	})
	// reach is the range reaching furthest among those before i (same family): if
	// range i starts within it they overlap, however many short ranges lie between.
	reach := -1
	for i, cur := range all {
		if reach >= 0 && all[reach].r.overlaps(cur.r) {
			prev := all[reach]
			if prev.pool == cur.pool {
				return fmt.Errorf("pool %q: ranges %s and %s overlap", cur.pool, prev.r, cur.r)
			}
			return fmt.Errorf("pools %q and %q overlap: %s and %s", prev.pool, cur.pool, prev.r, cur.r)
		}
		if reach < 0 || all[reach].r.First.BitLen() != cur.r.First.BitLen() || cur.r.Last.Compare(all[reach].r.Last) > 0 {
			reach = i
		}
	}
	return nil
}
