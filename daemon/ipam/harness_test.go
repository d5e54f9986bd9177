package ipam

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// allocCase is one Allocate decision: the pools (flag syntax), other Services'
// committed allocations, the Service's own existing allocation, its request, and the
// expected answer.
type allocCase struct {
	name     string
	pools    []string
	others   []Allocation
	existing *Allocation
	req      Request

	want    []string // expected IPs, primary first; nil when err is set
	pool    string   // expected pool
	changed bool
	err     error  // expected sentinel (errors.Is), nil for success
	msg     string // substring of Err, or of Reason on success ("" = don't care)
}

func mustPools(t testing.TB, specs ...string) []Pool {
	t.Helper()
	pools, err := ParsePools(specs)
	if err != nil {
		t.Fatal(err)
	}
	return pools
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, addr(s))
	}
	return out
}

func req(svc string, pol Policy, fams ...Family) Request {
	return Request{Service: svc, Policy: pol, Families: fams}
}

func ptr(a Allocation) *Allocation { return &a }

// run checks one case and the properties every decision must have: Allocate does not
// touch the index, Reason explains every change, an error leaves no IPs, and
// re-running on the committed answer changes nothing (restart / new leader).
func (c allocCase) run(t *testing.T) Result {
	t.Helper()
	pools := mustPools(t, c.pools...)
	all := slices.Clone(c.others)
	if c.existing != nil {
		all = append(all, *c.existing)
	}
	used := NewUsed(all)
	runsBefore, lenBefore := slices.Clone(used.runs), used.Len()
	res := Allocate(pools, used, c.req, c.existing)
	if !slices.Equal(used.runs, runsBefore) || used.Len() != lenBefore {
		t.Fatal("Allocate modified the Used index")
	}
	if c.err != nil {
		if res.Err == nil {
			t.Fatalf("got %v from %q (reason %q), want error %v", res.Allocation.IPs, res.Allocation.Pool, res.Reason, c.err)
		}
		if !errors.Is(res.Err, c.err) {
			t.Fatalf("error %q is not %v", res.Err, c.err)
		}
		if !strings.Contains(res.Err.Error(), c.msg) {
			t.Fatalf("error %q does not contain %q", res.Err, c.msg)
		}
		if len(res.Allocation.IPs) != 0 || res.Allocation.Service != c.req.Service {
			t.Fatalf("failed allocation carries %+v", res.Allocation)
		}
		if res.Changed != c.changed {
			t.Fatalf("Changed = %v, want %v (release of the existing allocation)", res.Changed, c.changed)
		}
		if !strings.Contains(res.Reason, res.Err.Error()) {
			t.Fatalf("Reason %q does not carry the error", res.Reason)
		}
		return res
	}
	if res.Err != nil {
		t.Fatalf("unexpected error: %v", res.Err)
	}
	if got := res.Allocation.IPs; !slices.Equal(got, addrs(c.want...)) {
		t.Fatalf("IPs = %v, want %v (reason %q)", got, c.want, res.Reason)
	}
	if res.Allocation.Pool != c.pool {
		t.Fatalf("pool = %q, want %q", res.Allocation.Pool, c.pool)
	}
	if res.Changed != c.changed {
		t.Fatalf("Changed = %v, want %v (reason %q)", res.Changed, c.changed, res.Reason)
	}
	if res.Changed && res.Reason == "" {
		t.Fatal("changed without a Reason")
	}
	if !strings.Contains(res.Reason, c.msg) {
		t.Fatalf("Reason %q does not contain %q", res.Reason, c.msg)
	}
	if res.Allocation.Service != c.req.Service || res.Allocation.SharingKey != c.req.SharingKey ||
		!slices.Equal(res.Allocation.Ports, normPorts(c.req.Ports)) {
		t.Fatalf("allocation metadata %+v does not follow the request %+v", res.Allocation, c.req)
	}
	used.Add(res.Allocation)
	again := Allocate(pools, used, c.req, &res.Allocation)
	if again.Err != nil || again.Changed || !slices.Equal(again.Allocation.IPs, res.Allocation.IPs) || again.Allocation.Pool != res.Allocation.Pool {
		t.Fatalf("re-run on the committed answer is not stable: %+v", again)
	}
	return res
}

func runCases(t *testing.T, cases []allocCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t) })
	}
}
