package ipam

import (
	"net/netip"
	"testing"
)

func withIPs(r Request, ips ...string) Request {
	r.RequestedIPs = addrs(ips...)
	return r
}

func withShare(r Request, key string, ports ...Port) Request {
	r.SharingKey, r.Ports = key, ports
	return r
}

func inPool(r Request, pool string) Request {
	r.Pool = pool
	return r
}

func TestRequestedIPs(t *testing.T) {
	two := []string{"a=10.0.0.0/24,2001:db8:1::/120", "b=10.0.1.0/24;auto-assign=false"}
	s4 := req("ns/s", SingleStack, V4)
	dual := req("ns/s", PreferDualStack, V4, V6)
	runCases(t, []allocCase{
		{
			name: "free address in a pool", pools: two, req: withIPs(s4, "10.0.0.77"),
			want: []string{"10.0.0.77"}, pool: "a", changed: true, msg: "allocated requested 10.0.0.77 from pool a",
		},
		{
			name: "spec.loadBalancerIP in a pool that does not auto-assign", pools: two, req: withIPs(s4, "10.0.1.9"),
			want: []string{"10.0.1.9"}, pool: "b", changed: true,
		},
		{
			name: "named pool matches", pools: two, req: inPool(withIPs(s4, "10.0.1.9"), "b"),
			want: []string{"10.0.1.9"}, pool: "b", changed: true,
		},
		{
			name: "named pool mismatch", pools: two, req: inPool(withIPs(s4, "10.0.0.9"), "b"),
			err: ErrNotInPool, msg: "requested ip 10.0.0.9 is in pool a, not in pool b the service asks for",
		},
		{
			name: "named pool does not exist", pools: two, req: inPool(withIPs(s4, "10.0.0.9"), "zzz"),
			err: ErrNotInPool, msg: "not in pool zzz",
		},
		{
			name: "outside every pool", pools: two, req: withIPs(s4, "10.9.9.9"),
			err: ErrNotInPool, msg: "requested ip 10.9.9.9 is not in any pool",
		},
		{
			name: "outside the named pool and every pool", pools: two, req: inPool(withIPs(s4, "10.9.9.9"), "a"),
			err: ErrNotInPool, msg: "requested ip 10.9.9.9 is not in pool a (it is in no pool)",
		},
		{
			name: "network address of a CIDR pool is not in it", pools: two, req: withIPs(s4, "10.0.0.0"),
			err: ErrNotInPool, msg: "10.0.0.0 is not in any pool",
		},
		{
			name: "in use by another service", pools: two, others: []Allocation{alloc("ns/holder", "a", "10.0.0.5")},
			req: withIPs(s4, "10.0.0.5"),
			err: ErrInUse, msg: "requested ip 10.0.0.5 is in use by ns/holder",
		},
		{
			name: "in use, released existing", pools: two, others: []Allocation{alloc("ns/holder", "a", "10.0.0.5")},
			existing: ptr(alloc("ns/s", "a", "10.0.0.4")), req: withIPs(s4, "10.0.0.5"),
			err: ErrInUse, msg: "in use by ns/holder", changed: true,
		},
		{
			name: "dual request, listed v6 first, ordered by ipFamilies", pools: two, req: withIPs(dual, "2001:db8:1::9", "10.0.0.9"),
			want: []string{"10.0.0.9", "2001:db8:1::9"}, pool: "a", changed: true,
		},
		{
			name: "duplicate requested address collapses", pools: two, req: withIPs(s4, "10.0.0.9", "10.0.0.9"),
			want: []string{"10.0.0.9"}, pool: "a", changed: true,
		},
		{
			name: "prefer with only a v4 requested gets just that", pools: two, req: withIPs(dual, "10.0.0.9"),
			want: []string{"10.0.0.9"}, pool: "a", changed: true,
		},
		{
			name: "require with only a v4 requested is invalid", pools: two,
			req: withIPs(req("ns/s", RequireDualStack, V4, V6), "10.0.0.9"),
			err: ErrInvalidRequest, msg: "RequireDualStack needs one requested ip of each family",
		},
		{
			name: "requested family not wanted", pools: two, req: withIPs(s4, "2001:db8:1::9"),
			err: ErrInvalidRequest, msg: "requested ip 2001:db8:1::9 is IPv6 but the service (SingleStack) wants [IPv4]",
		},
		{
			name: "two of one family", pools: two, req: withIPs(dual, "10.0.0.9", "10.0.0.10"),
			err: ErrInvalidRequest, msg: "both IPv4",
		},
		{
			name: "IPv4-mapped IPv6", pools: two, req: withIPs(s4, "::ffff:10.0.0.9"),
			err: ErrInvalidRequest, msg: "not a plain IPv4 or IPv6 address",
		},
		{
			name: "zoned", pools: two, req: Request{Service: "ns/s", RequestedIPs: []netip.Addr{addr("fe80::1%eth0")}, Families: []Family{V6}},
			err: ErrInvalidRequest, msg: "not a plain",
		},
		{
			name: "two requested in different pools", pools: []string{"a=10.0.0.0/24", "b=2001:db8:1::/120"},
			req: withIPs(dual, "10.0.0.9", "2001:db8:1::9"),
			err: ErrNotInPool, msg: "requested ips 10.0.0.9 (pool a) and 2001:db8:1::9 (pool b) must come from one pool",
		},
		{
			name: "unchanged request keeps without change", pools: two,
			existing: ptr(alloc("ns/s", "a", "10.0.0.9")), req: withIPs(s4, "10.0.0.9"),
			want: []string{"10.0.0.9"}, pool: "a", changed: false,
		},
		{
			name: "changed request moves", pools: two,
			existing: ptr(alloc("ns/s", "a", "10.0.0.9")), req: withIPs(s4, "10.0.0.10"),
			want: []string{"10.0.0.10"}, pool: "a", changed: true, msg: "allocated requested 10.0.0.10",
		},
		{
			name: "requested address left every pool is kept", pools: []string{"b=10.0.1.0/24"},
			existing: ptr(alloc("ns/s", "a", "10.0.0.9")), req: withIPs(s4, "10.0.0.9"),
			want: []string{"10.0.0.9"}, pool: "a", changed: false,
			msg: "ip 10.0.0.9 is no longer in any pool; kept until the operator acts",
		},
		{
			name: "adding a v6 to a requested v4 outside every pool keeps the v4", pools: []string{"b=10.0.1.0/24,2001:db8:1::/120"},
			existing: ptr(alloc("ns/s", "a", "10.0.0.9")), req: withIPs(dual, "10.0.0.9", "2001:db8:1::7"),
			want: []string{"10.0.0.9", "2001:db8:1::7"}, pool: "b", changed: true,
			msg: "ip 10.0.0.9 is no longer in any pool",
		},
		{
			name: "auto allocation switched to a requested address", pools: two,
			existing: ptr(alloc("ns/s", "a", "10.0.0.1")), req: withIPs(s4, "10.0.0.50"),
			want: []string{"10.0.0.50"}, pool: "a", changed: true,
		},
		{
			name: "requested address removed from the annotation keeps it as auto", pools: two,
			existing: ptr(alloc("ns/s", "a", "10.0.0.50")), req: s4,
			want: []string{"10.0.0.50"}, pool: "a", changed: false,
		},
	})
}

func TestSharing(t *testing.T) {
	pools := []string{"a=10.0.0.0/24", "m=10.0.9.0/24;auto-assign=false"}
	web := shared(alloc("ns/web", "a", "10.0.0.1"), "k", tcp(80), tcp(443))
	dns := shared(alloc("ns/dns", "a", "10.0.0.1"), "k", udp(53))
	plain := alloc("ns/plain", "a", "10.0.0.2")
	s4 := req("ns/s", SingleStack, V4)
	runCases(t, []allocCase{
		{
			name: "requested, same key, no port clash", pools: pools, others: []Allocation{web},
			req:  withIPs(withShare(s4, "k", udp(53)), "10.0.0.1"),
			want: []string{"10.0.0.1"}, pool: "a", changed: true,
		},
		{
			name: "requested, same key, port clash", pools: pools, others: []Allocation{web},
			req: withIPs(withShare(s4, "k", tcp(443)), "10.0.0.1"),
			err: ErrInUse, msg: "requested ip 10.0.0.1 is shared with ns/web, which already uses port TCP/443",
		},
		{
			name: "requested, protocol spelled differently still clashes", pools: pools, others: []Allocation{web},
			req: withIPs(withShare(s4, "k", Port{Port: 80}), "10.0.0.1"),
			err: ErrInUse, msg: "TCP/80",
		},
		{
			name: "requested, different key", pools: pools, others: []Allocation{web},
			req: withIPs(withShare(s4, "j", udp(53)), "10.0.0.1"),
			err: ErrInUse, msg: `in use by ns/web under sharing key "k", not "j"`,
		},
		{
			name: "requested, we have no key", pools: pools, others: []Allocation{web},
			req: withIPs(withShare(s4, "", udp(53)), "10.0.0.1"),
			err: ErrInUse, msg: "in use by ns/web",
		},
		{
			name: "requested, holder has no key", pools: pools, others: []Allocation{plain},
			req: withIPs(withShare(s4, "k", udp(53)), "10.0.0.2"),
			err: ErrInUse, msg: "in use by ns/plain",
		},
		{
			name: "requested, third sharer clashing with the second", pools: pools, others: []Allocation{web, dns},
			req: withIPs(withShare(s4, "k", udp(53)), "10.0.0.1"),
			err: ErrInUse, msg: "ns/dns, which already uses port UDP/53",
		},
		{
			name: "requested, third sharer fits", pools: pools, others: []Allocation{web, dns},
			req:  withIPs(withShare(s4, "k", tcp(53)), "10.0.0.1"),
			want: []string{"10.0.0.1"}, pool: "a", changed: true,
		},
		{
			name: "auto, joins the address shared under its key", pools: pools, others: []Allocation{plain, web},
			req:  withShare(s4, "k", udp(53)),
			want: []string{"10.0.0.1"}, pool: "a", changed: true,
		},
		{
			name: "auto, port clash takes the lowest free instead", pools: pools, others: []Allocation{plain, web},
			req:  withShare(s4, "k", tcp(80)),
			want: []string{"10.0.0.3"}, pool: "a", changed: true,
		},
		{
			name: "auto, different key never shares", pools: pools, others: []Allocation{web},
			req:  withShare(s4, "j", udp(53)),
			want: []string{"10.0.0.2"}, pool: "a", changed: true,
		},
		{
			name: "auto, no key never shares", pools: pools, others: []Allocation{web},
			req:  withShare(s4, "", udp(53)),
			want: []string{"10.0.0.2"}, pool: "a", changed: true,
		},
		{
			name: "auto, lowest shareable address of several", pools: pools,
			others: []Allocation{
				shared(alloc("ns/x", "a", "10.0.0.9"), "k", tcp(1)),
				shared(alloc("ns/y", "a", "10.0.0.4"), "k", tcp(2)),
				shared(alloc("ns/z", "a", "10.0.0.3"), "k", tcp(3)),
			},
			req:  withShare(s4, "k", tcp(3)),
			want: []string{"10.0.0.4"}, pool: "a", changed: true,
		},
		{
			name: "auto, shared address in a pool it may not use is ignored", pools: pools,
			others: []Allocation{shared(alloc("ns/m", "m", "10.0.9.1"), "k", tcp(80))},
			req:    withShare(s4, "k", udp(53)),
			want:   []string{"10.0.0.1"}, pool: "a", changed: true,
		},
		{
			name: "auto, shared address of the other family is ignored", pools: []string{"a=10.0.0.0/24,2001:db8:1::/120"},
			others: []Allocation{shared(alloc("ns/v6", "a", "2001:db8:1::7"), "k", tcp(80))},
			req:    withShare(s4, "k", udp(53)),
			want:   []string{"10.0.0.1"}, pool: "a", changed: true,
		},
		{
			name: "auto, named pool honoured when sharing", pools: pools,
			others: []Allocation{web, shared(alloc("ns/m", "m", "10.0.9.1"), "k", tcp(80))},
			req:    inPool(withShare(s4, "k", udp(53)), "m"),
			want:   []string{"10.0.9.1"}, pool: "m", changed: true,
		},
		{
			name: "existing shared address whose sharer now clashes moves", pools: pools,
			others:   []Allocation{web},
			existing: ptr(shared(alloc("ns/s", "a", "10.0.0.1"), "k", udp(53))),
			req:      withShare(s4, "k", tcp(80)),
			want:     []string{"10.0.0.2"}, pool: "a", changed: true,
			msg: "released 10.0.0.1: ip 10.0.0.1 is shared with ns/web, which already uses port TCP/80",
		},
		{
			name: "existing shared address whose key changed moves", pools: pools,
			others:   []Allocation{web},
			existing: ptr(shared(alloc("ns/s", "a", "10.0.0.1"), "k", udp(53))),
			req:      withShare(s4, "new", udp(53)),
			want:     []string{"10.0.0.2"}, pool: "a", changed: true,
			msg: `under sharing key "k", not "new"`,
		},
		{
			name: "address outside every pool: a sharer changing its key still loses it", pools: []string{"b=10.0.1.0/24"},
			others:   []Allocation{shared(alloc("ns/web", "a", "10.0.0.1"), "k", tcp(80))},
			existing: ptr(shared(alloc("ns/s", "a", "10.0.0.1"), "k", udp(53))),
			req:      withShare(s4, "j", udp(53)),
			want:     []string{"10.0.1.1"}, pool: "b", changed: true,
			msg: `released 10.0.0.1: ip 10.0.0.1 is in use by ns/web under sharing key "k", not "j"`,
		},
		{
			name: "address outside every pool: sharers that still fit keep it", pools: []string{"b=10.0.1.0/24"},
			others:   []Allocation{shared(alloc("ns/web", "a", "10.0.0.1"), "k", tcp(80))},
			existing: ptr(shared(alloc("ns/s", "a", "10.0.0.1"), "k", udp(53))),
			req:      withShare(s4, "k", udp(53)),
			want:     []string{"10.0.0.1"}, pool: "a", changed: false, msg: "no longer in any pool",
		},
		{
			name: "key added to an unshared address keeps it", pools: pools,
			existing: ptr(alloc("ns/s", "a", "10.0.0.7")),
			req:      withShare(s4, "k", udp(53)),
			want:     []string{"10.0.0.7"}, pool: "a", changed: true,
			msg: "updated sharing key or ports",
		},
		{
			name: "ports re-ordered and re-cased are no change", pools: pools,
			existing: ptr(shared(alloc("ns/s", "a", "10.0.0.7"), "k", udp(53), tcp(53))),
			req:      withShare(s4, "k", tcp(53), Port{Protocol: "udp", Port: 53}, tcp(53)),
			want:     []string{"10.0.0.7"}, pool: "a", changed: false,
		},
	})
}

func TestExhaustionAndPoolChoice(t *testing.T) {
	tiny := "a=10.0.0.1-10.0.0.2"
	full := []Allocation{alloc("ns/x", "a", "10.0.0.1"), alloc("ns/y", "a", "10.0.0.2")}
	s4 := req("ns/s", SingleStack, V4)
	runCases(t, []allocCase{
		{
			name: "lowest free in the first pool by name", pools: []string{"b=10.0.1.0/24", "a=10.0.0.0/24"}, req: s4,
			want: []string{"10.0.0.1"}, pool: "a", changed: true, msg: "allocated 10.0.0.1 from pool a",
		},
		{
			name: "ranges tried in declared order", pools: []string{"a=10.0.5.0/24,10.0.1.0/24"}, req: s4,
			want: []string{"10.0.5.1"}, pool: "a", changed: true,
		},
		{
			name: "next range once the first is full", pools: []string{"a=10.0.0.1-10.0.0.2,10.0.7.7"}, others: full, req: s4,
			want: []string{"10.0.7.7"}, pool: "a", changed: true,
		},
		{
			name: "fills holes left by released services", pools: []string{"a=10.0.0.1-10.0.0.9"},
			others: []Allocation{alloc("ns/x", "a", "10.0.0.1"), alloc("ns/z", "a", "10.0.0.3")}, req: s4,
			want: []string{"10.0.0.2"}, pool: "a", changed: true,
		},
		{
			name: "exhausted pool", pools: []string{tiny}, others: full, req: s4,
			err: ErrExhausted, msg: "pool a exhausted for IPv4",
		},
		{
			name: "exhausted pool spills into the next", pools: []string{tiny, "b=10.0.1.0/24"}, others: full, req: s4,
			want: []string{"10.0.1.1"}, pool: "b", changed: true,
		},
		{
			name: "all exhausted", pools: []string{tiny, "b=10.0.1.5"}, others: append(full, alloc("ns/z", "b", "10.0.1.5")), req: s4,
			err: ErrExhausted, msg: "pools a, b exhausted for IPv4",
		},
		{
			name: "named exhausted pool does not spill", pools: []string{tiny, "b=10.0.1.0/24"}, others: full, req: inPool(s4, "a"),
			err: ErrExhausted, msg: "pool a exhausted for IPv4",
		},
		{
			name: "named pool without the family", pools: []string{"a=10.0.0.0/24", "b=2001:db8:1::/120"}, req: inPool(s4, "b"),
			err: ErrNoFamily, msg: "pool b has no IPv4 range",
		},
		{
			name: "named dual-stack pool without a pair", pools: []string{"a=10.0.0.0/24,2001:db8:1::/120", "b=2001:db8:2::/120"},
			req: inPool(req("ns/s", RequireDualStack, V4, V6), "b"),
			err: ErrNoDualStack, msg: "pool b does not have both IPv4 and IPv6 free addresses (b has no IPv4 range)",
		},
		{
			name: "named pool that does not exist", pools: []string{"a=10.0.0.0/24"}, req: inPool(s4, "nope"),
			err: ErrUnknownPool, msg: "pool nope does not exist",
		},
		{
			name: "auto-assign=false pools are skipped", pools: []string{"a=10.0.0.0/24;auto-assign=false", "b=10.0.1.0/24"}, req: s4,
			want: []string{"10.0.1.1"}, pool: "b", changed: true,
		},
		{
			name: "auto-assign=false pool used when named", pools: []string{"a=10.0.0.0/24;auto-assign=false", "b=10.0.1.0/24"}, req: inPool(s4, "a"),
			want: []string{"10.0.0.1"}, pool: "a", changed: true,
		},
		{
			name: "no auto-assign pool at all", pools: []string{"a=10.0.0.0/24;auto-assign=false"}, req: s4,
			err: ErrNoFamily, msg: "no pool has auto-assign enabled",
		},
		{
			name: "no pools at all", req: s4,
			err: ErrNoFamily, msg: "no pool has auto-assign enabled",
		},
		{
			name: "include-network-broadcast hands out .0 first", pools: []string{"a=10.0.0.0/24;include-network-broadcast=true"}, req: s4,
			want: []string{"10.0.0.0"}, pool: "a", changed: true,
		},
		{
			name: "broadcast skipped at the end of a CIDR", pools: []string{"a=10.0.0.252/30"},
			others: []Allocation{alloc("ns/x", "a", "10.0.0.253"), alloc("ns/y", "a", "10.0.0.254")}, req: s4,
			err: ErrExhausted, msg: "pool a exhausted for IPv4",
		},
	})
}

func TestPoolChanges(t *testing.T) {
	s4 := req("ns/s", SingleStack, V4)
	held := ptr(alloc("ns/s", "a", "10.0.0.200"))
	runCases(t, []allocCase{
		{
			name: "valid existing allocation is kept", pools: []string{"a=10.0.0.0/24"},
			others:   []Allocation{alloc("ns/x", "a", "10.0.0.1")},
			existing: held, req: s4,
			want: []string{"10.0.0.200"}, pool: "a", changed: false,
		},
		{
			name: "pool removed: address kept and reported", pools: []string{"b=10.0.1.0/24"},
			existing: held, req: s4,
			want: []string{"10.0.0.200"}, pool: "a", changed: false,
			msg: "ip 10.0.0.200 is no longer in any pool; kept until the operator acts",
		},
		{
			name: "all pools removed: address kept", existing: held, req: s4,
			want: []string{"10.0.0.200"}, pool: "a", changed: false, msg: "kept until the operator acts",
		},
		{
			name: "pool shrunk below the address: kept", pools: []string{"a=10.0.0.0/25"},
			existing: held, req: s4,
			want: []string{"10.0.0.200"}, pool: "a", changed: false, msg: "no longer in any pool",
		},
		{
			name: "pool removed while the service names it: kept", pools: []string{"b=10.0.1.0/24"},
			existing: held, req: inPool(s4, "a"),
			want: []string{"10.0.0.200"}, pool: "a", changed: false, msg: "no longer in any pool",
		},
		{
			name: "pool renamed: same address, new pool name", pools: []string{"renamed=10.0.0.0/24"},
			existing: held, req: s4,
			want: []string{"10.0.0.200"}, pool: "renamed", changed: true,
			msg: "10.0.0.200 now belongs to pool renamed (was a)",
		},
		{
			name: "pool turned auto-assign=false: kept", pools: []string{"a=10.0.0.0/24;auto-assign=false", "b=10.0.1.0/24"},
			existing: held, req: s4,
			want: []string{"10.0.0.200"}, pool: "a", changed: false,
		},
		{
			name: "annotation names another pool: moved", pools: []string{"a=10.0.0.0/24", "b=10.0.1.0/24"},
			existing: held, req: inPool(s4, "b"),
			want: []string{"10.0.1.1"}, pool: "b", changed: true,
			msg: "released 10.0.0.200: it is in pool a, not in pool b the service asks for",
		},
		{
			name: "annotation names the pool it is in: no change", pools: []string{"a=10.0.0.0/24", "b=10.0.1.0/24"},
			existing: held, req: inPool(s4, "a"),
			want: []string{"10.0.0.200"}, pool: "a", changed: false,
		},
		{
			name: "annotation names another pool while the address is outside every pool: moved", pools: []string{"b=10.0.1.0/24"},
			existing: held, req: inPool(s4, "b"),
			want: []string{"10.0.1.1"}, pool: "b", changed: true,
			msg: "released 10.0.0.200: it is in no pool and the service now asks for pool b",
		},
		{
			name: "named pool renamed under the service: kept, reported", pools: []string{"renamed=10.0.0.0/24"},
			existing: held, req: inPool(s4, "a"),
			want: []string{"10.0.0.200"}, pool: "a", changed: false,
			msg: "ip 10.0.0.200: pool a the service asks for no longer exists (the address is now in pool renamed); kept until the operator acts",
		},
		{
			name: "named pool renamed, annotation follows: pool name updated", pools: []string{"renamed=10.0.0.0/24"},
			existing: held, req: inPool(s4, "renamed"),
			want: []string{"10.0.0.200"}, pool: "renamed", changed: true,
			msg: "now belongs to pool renamed (was a)",
		},
		{
			name: "annotation names a missing pool: pending, released", pools: []string{"a=10.0.0.0/24"},
			existing: held, req: inPool(s4, "nope"),
			err: ErrUnknownPool, msg: "pool nope does not exist", changed: true,
		},
		{
			name: "existing with no addresses is allocated afresh", pools: []string{"a=10.0.0.0/24"},
			existing: ptr(Allocation{Service: "ns/s"}), req: s4,
			want: []string{"10.0.0.1"}, pool: "a", changed: true,
		},
	})
}

func TestRequestValidation(t *testing.T) {
	pools := []string{"a=10.0.0.0/24,2001:db8:1::/120"}
	runCases(t, []allocCase{
		{name: "no service key", pools: pools, req: Request{}, err: ErrInvalidRequest, msg: "no service key"},
		{name: "family twice", pools: pools, req: req("ns/s", PreferDualStack, V4, V4), err: ErrInvalidRequest, msg: "at most once"},
		{name: "three families", pools: pools, req: req("ns/s", PreferDualStack, V4, V6, V4), err: ErrInvalidRequest, msg: "at most once"},
		{name: "unknown family", pools: pools, req: req("ns/s", SingleStack, Family(5)), err: ErrInvalidRequest, msg: "unknown ip family Family(5)"},
		{name: "zero family", pools: pools, req: req("ns/s", SingleStack, Family(0)), err: ErrInvalidRequest, msg: "unknown ip family"},
		{name: "require with one family", pools: pools, req: req("ns/s", RequireDualStack, V6), err: ErrInvalidRequest, msg: "RequireDualStack needs two ipFamilies"},
		{name: "require with default family", pools: pools, req: req("ns/s", RequireDualStack), err: ErrInvalidRequest, msg: "needs two"},
		{name: "unknown policy", pools: pools, req: req("ns/s", Policy(7), V4), err: ErrInvalidRequest, msg: "unknown ipFamilyPolicy Policy(7)"},
		{
			name: "invalid request releases the existing allocation", pools: pools,
			existing: ptr(alloc("ns/s", "a", "10.0.0.1")), req: req("ns/s", Policy(7), V4),
			err: ErrInvalidRequest, changed: true,
		},
	})
}

func TestNilUsedAndNames(t *testing.T) {
	res := Allocate(mustPools(t, "a=10.0.0.0/24"), nil, req("ns/s", SingleStack), nil)
	if res.Err != nil || res.Allocation.IPs[0] != addr("10.0.0.1") {
		t.Fatalf("nil Used: %+v", res)
	}
	for p, want := range map[Policy]string{SingleStack: "SingleStack", PreferDualStack: "PreferDualStack", RequireDualStack: "RequireDualStack", Policy(9): "Policy(9)"} {
		if p.String() != want {
			t.Errorf("%d.String() = %q", int(p), p.String())
		}
	}
	if s := (Port{Protocol: "SCTP", Port: 9}).String(); s != "SCTP/9" {
		t.Errorf("port = %q", s)
	}
}

func TestOutsidePools(t *testing.T) {
	pools := mustPools(t, "a=10.0.0.0/24,2001:db8:1::/120")
	got := OutsidePools(pools, []Allocation{
		alloc("ns/in", "a", "10.0.0.1", "2001:db8:1::1"),
		alloc("ns/half", "a", "10.0.0.2", "2001:db8:2::1"),
		alloc("ns/out", "old", "10.0.9.1"),
		alloc("ns/netaddr", "a", "10.0.0.0"),
	})
	want := map[string][]netip.Addr{
		"ns/half":    addrs("2001:db8:2::1"),
		"ns/out":     addrs("10.0.9.1"),
		"ns/netaddr": addrs("10.0.0.0"),
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for svc, ips := range want {
		if len(got[svc]) != len(ips) || got[svc][0] != ips[0] {
			t.Fatalf("%s: got %v, want %v", svc, got[svc], ips)
		}
	}
	if len(OutsidePools(pools, nil)) != 0 {
		t.Fatal("no allocations reported something")
	}
}
