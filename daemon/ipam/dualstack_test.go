package ipam

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestDualStackMatrix runs every family policy against every shape of pool set.
// Expectations read "pool:ip,ip" or "!Sentinel message".
func TestDualStackMatrix(t *testing.T) {
	type shape struct {
		name  string
		pools []string
	}
	shapes := []shape{
		{"v4-only", []string{"a=10.0.0.0/24"}},
		{"v6-only", []string{"a=2001:db8:1::/120"}},
		{"both", []string{"a=10.0.0.0/24,2001:db8:1::/120"}},
		{"split", []string{"a=10.0.0.0/24", "b=2001:db8:1::/120"}},
		{"split+both", []string{"a=10.0.0.0/24", "b=10.0.1.0/24,2001:db8:1::/120"}},
		{"both-v6-full", []string{"a=10.0.0.0/24,2001:db8:1::5"}},
	}
	type kind struct {
		name string
		req  Request
	}
	kinds := []kind{
		{"single-default", req("ns/s", SingleStack)},
		{"single-v4", req("ns/s", SingleStack, V4)},
		{"single-v6", req("ns/s", SingleStack, V6)},
		{"single-v6-of-two", req("ns/s", SingleStack, V6, V4)},
		{"prefer-v4-v6", req("ns/s", PreferDualStack, V4, V6)},
		{"prefer-v6-v4", req("ns/s", PreferDualStack, V6, V4)},
		{"prefer-v4-only", req("ns/s", PreferDualStack, V4)},
		{"require-v4-v6", req("ns/s", RequireDualStack, V4, V6)},
		{"require-v6-v4", req("ns/s", RequireDualStack, V6, V4)},
	}
	want := map[string][]string{
		// single-default, single-v4, single-v6, single-v6-of-two, prefer-v4-v6, prefer-v6-v4, prefer-v4-only, require-v4-v6, require-v6-v4
		"v4-only": {"a:10.0.0.1", "a:10.0.0.1", "!ErrNoFamily no auto-assign pool has an IPv6 range", "!ErrNoFamily IPv6 range",
			"a:10.0.0.1", "a:10.0.0.1", "a:10.0.0.1",
			"!ErrNoDualStack no pool has both IPv4 and IPv6 free addresses (a has no IPv6 range)", "!ErrNoDualStack a has no IPv6 range"},
		"v6-only": {"!ErrNoFamily IPv4 range", "!ErrNoFamily IPv4 range", "a:2001:db8:1::1", "a:2001:db8:1::1",
			"a:2001:db8:1::1", "a:2001:db8:1::1", "!ErrNoFamily no auto-assign pool has an IPv4 range",
			"!ErrNoDualStack a has no IPv4 range", "!ErrNoDualStack a has no IPv4 range"},
		"both": {"a:10.0.0.1", "a:10.0.0.1", "a:2001:db8:1::1", "a:2001:db8:1::1",
			"a:10.0.0.1,2001:db8:1::1", "a:2001:db8:1::1,10.0.0.1", "a:10.0.0.1",
			"a:10.0.0.1,2001:db8:1::1", "a:2001:db8:1::1,10.0.0.1"},
		"split": {"a:10.0.0.1", "a:10.0.0.1", "b:2001:db8:1::1", "b:2001:db8:1::1",
			"a:10.0.0.1", "b:2001:db8:1::1", "a:10.0.0.1",
			"!ErrNoDualStack (a has no IPv6 range; b has no IPv4 range)", "!ErrNoDualStack (a has no IPv6 range; b has no IPv4 range)"},
		"split+both": {"a:10.0.0.1", "a:10.0.0.1", "b:2001:db8:1::1", "b:2001:db8:1::1",
			"b:10.0.1.1,2001:db8:1::1", "b:2001:db8:1::1,10.0.1.1", "a:10.0.0.1",
			"b:10.0.1.1,2001:db8:1::1", "b:2001:db8:1::1,10.0.1.1"},
		// 2001:db8:1::5 is held by ns/other without a sharing key.
		"both-v6-full": {"a:10.0.0.1", "a:10.0.0.1", "!ErrExhausted pool a exhausted for IPv6", "!ErrExhausted pool a exhausted for IPv6",
			"a:10.0.0.1", "a:10.0.0.1", "a:10.0.0.1",
			"!ErrNoDualStack a is exhausted for IPv6", "!ErrNoDualStack a is exhausted for IPv6"},
	}
	sentinels := map[string]error{"ErrNoFamily": ErrNoFamily, "ErrNoDualStack": ErrNoDualStack, "ErrExhausted": ErrExhausted}
	for _, sh := range shapes {
		for i, k := range kinds {
			exp := want[sh.name][i]
			c := allocCase{name: sh.name + "/" + k.name, pools: sh.pools, req: k.req, changed: true}
			if sh.name == "both-v6-full" {
				c.others = []Allocation{alloc("ns/other", "a", "2001:db8:1::5")}
			}
			if msg, ok := strings.CutPrefix(exp, "!"); ok {
				name, text, _ := strings.Cut(msg, " ")
				c.err, c.msg, c.changed = sentinels[name], text, false
			} else {
				pool, ips, _ := strings.Cut(exp, ":")
				c.pool, c.want = pool, strings.Split(ips, ",")
			}
			t.Run(c.name, func(t *testing.T) { c.run(t) })
		}
	}
}

// TestPreferFallbackExplains checks the Event text says why a PreferDualStack Service
// got one family only.
func TestPreferFallbackExplains(t *testing.T) {
	allocCase{
		pools: []string{"a=10.0.0.0/24", "b=2001:db8:1::/120"},
		req:   req("ns/s", PreferDualStack, V4, V6),
		want:  []string{"10.0.0.1"}, pool: "a", changed: true,
		msg: "allocated 10.0.0.1 from pool a, IPv4 only: no pool has both IPv4 and IPv6 free addresses",
	}.run(t)
}

// TestPreferIPv6PrimaryFallback pins the order docs/services.md states for an
// [IPv6, IPv4] PreferDualStack Service, as Kubernetes ("falls back to single-stack")
// and MetalLB (dual-stack pool, then primary, then secondary family) do: with only
// IPv4 pools it gets IPv4 rather than staying Pending, and it prefers IPv6 whenever
// some pool has it.
func TestPreferIPv6PrimaryFallback(t *testing.T) {
	r := req("ns/s", PreferDualStack, V6, V4)
	runCases(t, []allocCase{
		{name: "only an IPv4 pool: the secondary family", pools: []string{"a=10.0.0.0/24"}, req: r,
			want: []string{"10.0.0.1"}, pool: "a", changed: true, msg: "IPv4 only"},
		{name: "single-family pools of each: the primary family", pools: []string{"a=10.0.0.0/24", "b=2001:db8:1::/120"}, req: r,
			want: []string{"2001:db8:1::1"}, pool: "b", changed: true, msg: "IPv6 only"},
		{name: "IPv6 exhausted: the secondary family", pools: []string{"a=10.0.0.0/24,2001:db8:1::5"}, req: r,
			others: []Allocation{alloc("ns/other", "a", "2001:db8:1::5")},
			want:   []string{"10.0.0.1"}, pool: "a", changed: true, msg: "IPv4 only"},
		{name: "a dual-stack pool: both, IPv6 first", pools: []string{"a=10.0.0.0/24", "b=10.0.1.0/24,2001:db8:1::/120"}, req: r,
			want: []string{"2001:db8:1::1", "10.0.1.1"}, pool: "b", changed: true},
		{name: "nothing of either family: pending on the primary", pools: []string{"a=10.0.0.1", "b=2001:db8:1::1"}, req: r,
			others: []Allocation{alloc("ns/x", "a", "10.0.0.1"), alloc("ns/y", "b", "2001:db8:1::1")},
			err:    ErrExhausted, msg: "pool b exhausted for IPv6"},
	})
}

// TestPoolChangesDualStack covers a Service living through pool edits: gaining the
// second family, keeping a lone address when only another pool could add one, being
// moved only when RequireDualStack demands it.
func TestPoolChangesDualStack(t *testing.T) {
	v4only := ptr(alloc("ns/s", "a", "10.0.0.1"))
	runCases(t, []allocCase{
		{
			name:     "prefer gains v6 when its pool gets a v6 range",
			pools:    []string{"a=10.0.0.0/24,2001:db8:1::/120"},
			existing: v4only, req: req("ns/s", PreferDualStack, V4, V6),
			want: []string{"10.0.0.1", "2001:db8:1::1"}, pool: "a", changed: true,
			msg: "added IPv6 2001:db8:1::1 from pool a",
		},
		{
			name:     "prefer [v6,v4] holding only v4 gains v6 and puts it first",
			pools:    []string{"a=10.0.0.0/24,2001:db8:1::/120"},
			existing: v4only, req: req("ns/s", PreferDualStack, V6, V4),
			want: []string{"2001:db8:1::1", "10.0.0.1"}, pool: "a", changed: true,
			msg: "added IPv6",
		},
		{
			name:     "prefer gains v6 even if the pool stopped auto-assigning",
			pools:    []string{"a=10.0.0.0/24,2001:db8:1::/120;auto-assign=false"},
			existing: v4only, req: req("ns/s", PreferDualStack, V4, V6),
			want: []string{"10.0.0.1", "2001:db8:1::1"}, pool: "a", changed: true,
		},
		{
			name:     "prefer keeps its lone v4 when only another pool has both",
			pools:    []string{"a=10.0.0.0/24", "b=10.0.1.0/24,2001:db8:1::/120"},
			existing: v4only, req: req("ns/s", PreferDualStack, V4, V6),
			want: []string{"10.0.0.1"}, pool: "a", changed: false,
		},
		{
			name:     "prefer keeps its lone v4 when its pool's v6 is exhausted",
			pools:    []string{"a=10.0.0.0/24,2001:db8:1::1"},
			others:   []Allocation{alloc("ns/o", "a", "2001:db8:1::1")},
			existing: v4only, req: req("ns/s", PreferDualStack, V4, V6),
			want: []string{"10.0.0.1"}, pool: "a", changed: false,
		},
		{
			name:     "prefer holding v4 outside every pool cannot gain v6 and keeps v4",
			pools:    []string{"b=10.0.1.0/24,2001:db8:1::/120"},
			existing: v4only, req: req("ns/s", PreferDualStack, V4, V6),
			want: []string{"10.0.0.1"}, pool: "a", changed: false,
			msg: "ip 10.0.0.1 is no longer in any pool; kept until the operator acts",
		},
		{
			name:     "prefer holding v4 of a deleted pool gains v6 once the pool returns with v6",
			pools:    []string{"a=10.0.0.0/24,2001:db8:1::/120"},
			existing: v4only, req: req("ns/s", PreferDualStack, V4, V6),
			want: []string{"10.0.0.1", "2001:db8:1::1"}, pool: "a", changed: true,
		},
		{
			name:     "require holding v4 gains v6 from its own pool",
			pools:    []string{"a=10.0.0.0/24,2001:db8:1::/120", "b=10.0.1.0/24,2001:db8:2::/120"},
			existing: v4only, req: req("ns/s", RequireDualStack, V4, V6),
			want: []string{"10.0.0.1", "2001:db8:1::1"}, pool: "a", changed: true,
		},
		{
			name:     "require holding v4 moves to a pool with both when its pool has no v6",
			pools:    []string{"a=10.0.0.0/24", "b=10.0.1.0/24,2001:db8:1::/120"},
			existing: v4only, req: req("ns/s", RequireDualStack, V4, V6),
			want: []string{"10.0.1.1", "2001:db8:1::1"}, pool: "b", changed: true,
			msg: "pool a cannot add IPv6 to 10.0.0.1",
		},
		{
			name:     "require holding v4 with no pair anywhere goes pending and releases",
			pools:    []string{"a=10.0.0.0/24", "b=2001:db8:1::/120"},
			existing: v4only, req: req("ns/s", RequireDualStack, V4, V6),
			err: ErrNoDualStack, msg: "no pool has both IPv4 and IPv6 free addresses", changed: true,
		},
		{
			name:     "require whose own pool ran out of v6 goes pending",
			pools:    []string{"a=10.0.0.0/24,2001:db8:1::1"},
			others:   []Allocation{alloc("ns/o", "a", "2001:db8:1::1")},
			existing: v4only, req: req("ns/s", RequireDualStack, V4, V6),
			err: ErrNoDualStack, msg: "a is exhausted for IPv6", changed: true,
		},
		{
			name:     "dual-stack narrowed to single v4 keeps v4 and releases v6",
			pools:    []string{"a=10.0.0.0/24,2001:db8:1::/120"},
			existing: ptr(alloc("ns/s", "a", "10.0.0.1", "2001:db8:1::1")), req: req("ns/s", SingleStack, V4, V6),
			want: []string{"10.0.0.1"}, pool: "a", changed: true,
			msg: "released 2001:db8:1::1: the service no longer wants IPv6",
		},
		{
			name:     "dual-stack narrowed to single v6 keeps v6",
			pools:    []string{"a=10.0.0.0/24,2001:db8:1::/120"},
			existing: ptr(alloc("ns/s", "a", "10.0.0.1", "2001:db8:1::1")), req: req("ns/s", SingleStack, V6),
			want: []string{"2001:db8:1::1"}, pool: "a", changed: true,
			msg: "released 10.0.0.1",
		},
		{
			name:     "family order flipped reorders without moving",
			pools:    []string{"a=10.0.0.0/24,2001:db8:1::/120"},
			existing: ptr(alloc("ns/s", "a", "10.0.0.1", "2001:db8:1::1")), req: req("ns/s", RequireDualStack, V6, V4),
			want: []string{"2001:db8:1::1", "10.0.0.1"}, pool: "a", changed: true,
			msg: "kept 2001:db8:1::1, 10.0.0.1 from pool a",
		},
		{
			name:     "single v4 switched to single v6 gets a fresh v6",
			pools:    []string{"a=10.0.0.0/24,2001:db8:1::/120"},
			existing: v4only, req: req("ns/s", SingleStack, V6),
			want: []string{"2001:db8:1::1"}, pool: "a", changed: true,
			msg: "released 10.0.0.1",
		},
		{
			name:     "addresses spread over two pools after a re-arrangement keep the primary's pool",
			pools:    []string{"a=10.0.0.0/24", "b=2001:db8:1::/120"},
			existing: ptr(alloc("ns/s", "old", "10.0.0.1", "2001:db8:1::1")),
			req:      req("ns/s", PreferDualStack, V4, V6),
			want:     []string{"10.0.0.1"}, pool: "a", changed: true,
			msg: "released 2001:db8:1::1: it is in pool b while 10.0.0.1 is in pool a",
		},
	})
}

// TestDualStackSharing: two dual-stack Services with one key share both addresses.
func TestDualStackSharing(t *testing.T) {
	first := shared(alloc("ns/tcp", "a", "10.0.0.1", "2001:db8:1::1"), "k", tcp(53))
	r := req("ns/udp", RequireDualStack, V4, V6)
	r.SharingKey, r.Ports = "k", []Port{udp(53)}
	allocCase{
		pools: []string{"a=10.0.0.0/24,2001:db8:1::/120"}, others: []Allocation{first}, req: r,
		want: []string{"10.0.0.1", "2001:db8:1::1"}, pool: "a", changed: true,
	}.run(t)
	r.Families = []Family{V6, V4}
	allocCase{
		pools: []string{"a=10.0.0.0/24,2001:db8:1::/120"}, others: []Allocation{first}, req: r,
		want: []string{"2001:db8:1::1", "10.0.0.1"}, pool: "a", changed: true,
	}.run(t)
}

func TestMatrixSentinelsAreDistinct(t *testing.T) {
	all := []error{ErrInvalidRequest, ErrUnknownPool, ErrNotInPool, ErrInUse, ErrNoFamily, ErrExhausted, ErrNoDualStack}
	for i, a := range all {
		for j, b := range all {
			if (i == j) != errors.Is(a, b) {
				t.Fatalf("%v vs %v", a, b)
			}
		}
	}
	if s := fmt.Sprint(slices.Sorted(slices.Values([]string{V6.String(), V4.String(), Family(5).String()}))); s != "[Family(5) IPv4 IPv6]" {
		t.Fatalf("family names %s", s)
	}
}
