package ipam

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestWaits(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{fail(ErrExhausted, "pool a exhausted for IPv4"), true},
		{fail(ErrInUse, "requested ip 10.0.0.1 is in use by ns/x"), true},
		{fail(ErrNoDualStack, "no pool has both"), true},
		{fmt.Errorf("wrapped: %w", fail(ErrInUse, "x")), true},
		{fail(ErrInvalidRequest, "bad"), false},
		{fail(ErrUnknownPool, "pool z does not exist"), false},
		{fail(ErrNotInPool, "requested ip is not in any pool"), false},
		{fail(ErrNoFamily, "no auto-assign pool has an IPv6 range"), false},
		{errors.New("other"), false},
		{nil, false},
	}
	for _, c := range cases {
		if got := Waits(c.err); got != c.want {
			t.Errorf("Waits(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestUnblocks(t *testing.T) {
	base := Allocation{Service: "ns/a", Pool: "p", IPs: addrs("10.0.0.1", "2001:db8::1"), SharingKey: "k", Ports: []Port{tcp(80), tcp(443)}}
	with := func(f func(*Allocation)) *Allocation {
		a := base.clone()
		f(&a)
		return &a
	}
	cases := []struct {
		name      string
		old, next *Allocation
		want      bool
	}{
		{"new allocation", nil, &base, false},
		{"released", &base, nil, true},
		{"released empty", with(func(a *Allocation) { a.IPs = nil }), nil, false},
		{"unchanged", &base, with(func(*Allocation) {}), false},
		{"ports reordered and lowercased", &base, with(func(a *Allocation) { a.Ports = []Port{{"tcp", 443}, {"", 80}} }), false},
		{"gained nothing lost nothing, pool renamed", &base, with(func(a *Allocation) { a.Pool = "q" }), false},
		{"only gained an address", with(func(a *Allocation) { a.IPs = a.IPs[:1] }), &base, false},
		{"dropped a family", &base, with(func(a *Allocation) { a.IPs = a.IPs[:1] }), true},
		{"moved address", &base, with(func(a *Allocation) { a.IPs[0] = addr("10.0.0.2") }), true},
		{"port freed", &base, with(func(a *Allocation) { a.Ports = a.Ports[:1] }), true},
		{"port changed", &base, with(func(a *Allocation) { a.Ports = []Port{tcp(80), tcp(8443)} }), true},
		{"sharing key changed", &base, with(func(a *Allocation) { a.SharingKey = "other" }), true},
		{"sharing key dropped", &base, with(func(a *Allocation) { a.SharingKey = "" }), true},
		{"traffic policy changed", &base, with(func(a *Allocation) { a.LocalTraffic = true }), true},
		{"selector changed", &base, with(func(a *Allocation) { a.Selector = "app=x" }), true},
	}
	for _, c := range cases {
		if got := Unblocks(c.old, c.next); got != c.want {
			t.Errorf("%s: Unblocks = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestMissing(t *testing.T) {
	cases := []struct {
		name string
		req  Request
		ips  []string
		want []Family
	}{
		{"prefer holding v4 wants v6", req("ns/s", PreferDualStack, V4, V6), []string{"10.0.0.1"}, []Family{V6}},
		{"prefer v6-primary holding v4 wants v6", req("ns/s", PreferDualStack, V6, V4), []string{"10.0.0.1"}, []Family{V6}},
		{"prefer holding both", req("ns/s", PreferDualStack, V4, V6), []string{"10.0.0.1", "2001:db8::1"}, nil},
		{"prefer with one family listed", req("ns/s", PreferDualStack, V4), []string{"10.0.0.1"}, nil},
		{"prefer with no families listed defaults to v4", req("ns/s", PreferDualStack), []string{"10.0.0.1"}, nil},
		{"prefer pending holds nothing", req("ns/s", PreferDualStack, V4, V6), nil, nil},
		{"single stack never partial", req("ns/s", SingleStack, V4, V6), []string{"10.0.0.1"}, nil},
		{"require never partial", req("ns/s", RequireDualStack, V4, V6), []string{"10.0.0.1"}, nil},
	}
	for _, c := range cases {
		if got := Missing(c.req, addrs(c.ips...)); !slices.Equal(got, c.want) {
			t.Errorf("%s: Missing = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestRetryCures walks the waits the leader retries: a Service Pending because of
// another's allocation fits once that one changes in a way Unblocks reports, and a
// change Unblocks does not report leaves it Pending, so no retry is wasted.
func TestRetryCures(t *testing.T) {
	pools := mustPools(t, "a=10.0.0.0/30,2001:db8::/126")
	holder := Allocation{Service: "ns/holder", Pool: "a", IPs: addrs("10.0.0.1"), SharingKey: "k", Ports: []Port{tcp(80)}}
	cases := []struct {
		name    string
		waiter  Request
		change  func(h Allocation) *Allocation // the holder's new allocation, nil: deleted
		unblock bool
	}{
		{
			name:    "port clash, holder drops the port",
			waiter:  Request{Service: "ns/w", RequestedIPs: addrs("10.0.0.1"), SharingKey: "k", Ports: []Port{tcp(80)}},
			change:  func(h Allocation) *Allocation { h.Ports = []Port{tcp(81)}; return &h },
			unblock: true,
		},
		{
			name:    "sharing-key conflict, holder takes the waiter's key",
			waiter:  Request{Service: "ns/w", RequestedIPs: addrs("10.0.0.1"), SharingKey: "j", Ports: []Port{tcp(443)}},
			change:  func(h Allocation) *Allocation { h.SharingKey = "j"; return &h },
			unblock: true,
		},
		{
			name:    "requested address in use, holder deleted",
			waiter:  Request{Service: "ns/w", RequestedIPs: addrs("10.0.0.1")},
			change:  func(Allocation) *Allocation { return nil },
			unblock: true,
		},
		{
			name:    "port clash, holder changes nothing that matters",
			waiter:  Request{Service: "ns/w", RequestedIPs: addrs("10.0.0.1"), SharingKey: "k", Ports: []Port{tcp(80)}},
			change:  func(h Allocation) *Allocation { h.Ports = normPorts([]Port{{"tcp", 80}}); return &h },
			unblock: false,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			used := NewUsed([]Allocation{holder})
			res := Allocate(pools, used, c.waiter, nil)
			if !Waits(res.Err) {
				t.Fatalf("waiter not waiting on the holder: %v", res.Err)
			}
			next := c.change(holder.clone())
			if got := Unblocks(&holder, next); got != c.unblock {
				t.Fatalf("Unblocks = %v, want %v", got, c.unblock)
			}
			used.Remove(holder.Service)
			if next != nil {
				used.Add(*next)
			}
			res = Allocate(pools, used, c.waiter, nil)
			if fits := res.Err == nil; fits != c.unblock {
				t.Fatalf("after the change the waiter fits = %v (%v), want %v", fits, res.Err, c.unblock)
			}
		})
	}
}

// TestPreferGainsFreedFamily: a PreferDualStack Service that got only IPv4 because
// the pool's IPv6 was taken gains IPv6 when that address is freed, keeping its IPv4.
func TestPreferGainsFreedFamily(t *testing.T) {
	pools := mustPools(t, "a=10.0.0.0/30,2001:db8::1")
	other := alloc("ns/other", "a", "2001:db8::1")
	used := NewUsed([]Allocation{other})
	r := req("ns/s", PreferDualStack, V6, V4)
	first := Allocate(pools, used, r, nil)
	if first.Err != nil || !slices.Equal(first.Allocation.IPs, addrs("10.0.0.1")) {
		t.Fatalf("first decision %v %v, want 10.0.0.1 alone", first.Allocation.IPs, first.Err)
	}
	if got := Missing(r, first.Allocation.IPs); !slices.Equal(got, []Family{V6}) {
		t.Fatalf("Missing = %v, want [IPv6]", got)
	}
	used.Add(first.Allocation)
	if !Unblocks(&other, nil) {
		t.Fatal("deleting the IPv6 holder unblocks nobody")
	}
	used.Remove(other.Service)
	again := Allocate(pools, used, r, &first.Allocation)
	if again.Err != nil || !again.Changed || !slices.Equal(again.Allocation.IPs, addrs("2001:db8::1", "10.0.0.1")) {
		t.Fatalf("after the free: %v changed=%v %v, want 2001:db8::1, 10.0.0.1", again.Allocation.IPs, again.Changed, again.Err)
	}
	if Missing(r, again.Allocation.IPs) != nil {
		t.Fatal("still missing a family")
	}
}
