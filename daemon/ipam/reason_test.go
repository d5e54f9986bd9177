package ipam

import "testing"

// TestReasonText pins the whole Event text for the common outcomes: operators read
// these, so they must say what happened and why in one line.
func TestReasonText(t *testing.T) {
	dual := "a=10.0.0.0/24,2001:db8:1::/120"
	s4 := req("ns/s", SingleStack, V4)
	cases := []struct {
		name     string
		pools    []string
		others   []Allocation
		existing *Allocation
		req      Request
		want     string
	}{
		{
			name: "fresh single", pools: []string{dual}, req: s4,
			want: "allocated 10.0.0.1 from pool a",
		},
		{
			name: "fresh pair", pools: []string{dual}, req: req("ns/s", RequireDualStack, V6, V4),
			want: "allocated 2001:db8:1::1, 10.0.0.1 from pool a",
		},
		{
			name: "unchanged", pools: []string{dual}, existing: ptr(alloc("ns/s", "a", "10.0.0.9")), req: s4,
			want: "",
		},
		{
			name: "second family added", pools: []string{dual}, existing: ptr(alloc("ns/s", "a", "10.0.0.9")),
			req:  req("ns/s", PreferDualStack, V4, V6),
			want: "added IPv6 2001:db8:1::1 from pool a",
		},
		{
			name: "family dropped", pools: []string{dual}, existing: ptr(alloc("ns/s", "a", "10.0.0.9", "2001:db8:1::9")), req: s4,
			want: "kept 10.0.0.9 from pool a; released 2001:db8:1::9: the service no longer wants IPv6",
		},
		{
			name: "moved to the named pool", pools: []string{dual, "b=10.0.1.0/24"}, existing: ptr(alloc("ns/s", "a", "10.0.0.9")),
			req:  inPool(s4, "b"),
			want: "allocated 10.0.1.1 from pool b; released 10.0.0.9: it is in pool a, not in pool b the service asks for",
		},
		{
			name: "kept outside every pool", pools: []string{"b=10.0.1.0/24"}, existing: ptr(alloc("ns/s", "a", "10.0.0.9")), req: s4,
			want: "ip 10.0.0.9 is no longer in any pool; kept until the operator acts",
		},
		{
			name: "pending with release", pools: []string{dual}, others: []Allocation{alloc("ns/o", "a", "10.0.0.5")},
			existing: ptr(alloc("ns/s", "a", "10.0.0.9")), req: withIPs(s4, "10.0.0.5"),
			want: "requested ip 10.0.0.5 is in use by ns/o; released 10.0.0.9",
		},
		{
			name: "pending", pools: []string{"a=10.0.0.0/24"}, req: req("ns/s", RequireDualStack, V4, V6),
			want: "no pool has both IPv4 and IPv6 free addresses (a has no IPv6 range)",
		},
		{
			name: "prefer fell back", pools: []string{"a=10.0.0.0/24"}, req: req("ns/s", PreferDualStack, V6, V4),
			want: "allocated 10.0.0.1 from pool a, IPv4 only: no pool has both IPv4 and IPv6 free addresses (a has no IPv6 range)",
		},
		{
			name: "requested", pools: []string{dual}, req: withIPs(s4, "10.0.0.42"),
			want: "allocated requested 10.0.0.42 from pool a",
		},
		{
			name: "sharing key changed only", pools: []string{dual}, existing: ptr(alloc("ns/s", "a", "10.0.0.9")),
			req:  withShare(s4, "k"),
			want: "updated sharing key or ports",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			all := c.others
			if c.existing != nil {
				all = append(all, *c.existing)
			}
			res := Allocate(mustPools(t, c.pools...), NewUsed(all), c.req, c.existing)
			if res.Reason != c.want {
				t.Fatalf("Reason\n got %q\nwant %q", res.Reason, c.want)
			}
		})
	}
}
