package ipam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// fleet allocates n Services one after another, committing each answer, the way the
// leader's reconcile loop does. Services cycle through the policies so the fleet is
// mixed; every fifth shares a key with its neighbour.
func fleet(t testing.TB, pools []Pool, n int) ([]Request, []Allocation) {
	t.Helper()
	used := NewUsed(nil)
	reqs := make([]Request, n)
	allocs := make([]Allocation, n)
	for i := range n {
		r := Request{Service: fmt.Sprintf("ns/svc-%04d", i), Ports: []Port{tcp(int32(80 + i%3))}}
		switch i % 4 {
		case 0:
			r.Families = []Family{V4}
		case 1:
			r.Policy, r.Families = PreferDualStack, []Family{V6, V4}
		case 2:
			r.Policy, r.Families = RequireDualStack, []Family{V4, V6}
		case 3:
			r.Families = []Family{V6}
		}
		if i%5 == 0 {
			r.SharingKey = fmt.Sprintf("share-%d", i/10)
		}
		res := Allocate(pools, used, r, nil)
		if res.Err != nil {
			t.Fatalf("%s: %v", r.Service, res.Err)
		}
		used.Add(res.Allocation)
		reqs[i], allocs[i] = r, res.Allocation
	}
	return reqs, allocs
}

// TestRestartIdempotent: a new leader rebuilds the index from the FSM (any order),
// reads the pools (any order), and reconciles Services (any order). Nothing changes.
func TestRestartIdempotent(t *testing.T) {
	pools := mustPools(t, "a=10.0.0.0/26,2001:db8:1::/122", "b=10.0.1.0/24", "c=2001:db8:2::/120,10.0.2.0/24")
	reqs, allocs := fleet(t, pools, 300)
	r := rand.New(rand.NewPCG(7, 7))
	for round := range 5 {
		shAllocs := slices.Clone(allocs)
		r.Shuffle(len(shAllocs), func(i, j int) { shAllocs[i], shAllocs[j] = shAllocs[j], shAllocs[i] })
		shPools := slices.Clone(pools)
		r.Shuffle(len(shPools), func(i, j int) { shPools[i], shPools[j] = shPools[j], shPools[i] })
		used := NewUsed(shAllocs)
		for _, i := range r.Perm(len(reqs)) {
			ex, ok := used.Get(reqs[i].Service)
			if !ok {
				t.Fatalf("round %d: %s missing from the index", round, reqs[i].Service)
			}
			res := Allocate(shPools, used, reqs[i], &ex)
			if res.Err != nil || res.Changed || !slices.Equal(res.Allocation.IPs, allocs[i].IPs) || res.Allocation.Pool != allocs[i].Pool {
				t.Fatalf("round %d: %s re-run gave %+v, committed %+v", round, reqs[i].Service, res, allocs[i])
			}
		}
	}
}

// TestFromScratchDeterministic: two leaders allocating the same Services in the same
// order from pools listed in different orders agree address for address.
func TestFromScratchDeterministic(t *testing.T) {
	specs := []string{"a=10.0.0.0/26,2001:db8:1::/122", "b=10.0.1.0/24", "c=2001:db8:2::/120,10.0.2.0/24"}
	_, first := fleet(t, mustPools(t, specs...), 200)
	r := rand.New(rand.NewPCG(3, 4))
	for range 3 {
		pools := mustPools(t, specs...)
		r.Shuffle(len(pools), func(i, j int) { pools[i], pools[j] = pools[j], pools[i] })
		_, again := fleet(t, pools, 200)
		for i := range first {
			if !slices.Equal(first[i].IPs, again[i].IPs) || first[i].Pool != again[i].Pool {
				t.Fatalf("%s: %v/%s vs %v/%s", first[i].Service, first[i].IPs, first[i].Pool, again[i].IPs, again[i].Pool)
			}
		}
	}
}

// TestFleetInvariants: across a mixed fleet, every address is in the allocation's
// pool, families follow the request, and no address is held by two Services unless
// they share a key without a port clash.
func TestFleetInvariants(t *testing.T) {
	pools := mustPools(t, "a=10.0.0.0/26,2001:db8:1::/122", "b=10.0.1.0/24", "c=2001:db8:2::/120,10.0.2.0/24")
	reqs, allocs := fleet(t, pools, 300)
	holders := map[netip.Addr][]int{}
	for i, a := range allocs {
		r := reqs[i]
		var p *Pool
		for j := range pools {
			if pools[j].Name == a.Pool {
				p = &pools[j]
			}
		}
		if p == nil {
			t.Fatalf("%s: unknown pool %q", a.Service, a.Pool)
		}
		for k, ip := range a.IPs {
			if !p.Contains(ip) {
				t.Fatalf("%s: %s not in pool %s", a.Service, ip, a.Pool)
			}
			if familyOf(ip) != r.Families[k] && r.Policy != PreferDualStack {
				t.Fatalf("%s: ip %d is %s, want %s", a.Service, k, ip, r.Families[k])
			}
			holders[ip] = append(holders[ip], i)
		}
		if r.Policy == RequireDualStack && len(a.IPs) != 2 || r.Policy == SingleStack && len(a.IPs) != 1 {
			t.Fatalf("%s (%s): %v", a.Service, r.Policy, a.IPs)
		}
	}
	sharedSeen := 0
	for ip, hs := range holders {
		if len(hs) < 2 {
			continue
		}
		sharedSeen++
		for x := range hs {
			for y := range hs[:x] {
				ax, ay := allocs[hs[x]], allocs[hs[y]]
				if ax.SharingKey == "" || ax.SharingKey != ay.SharingKey {
					t.Fatalf("%s held by %s and %s without a common key", ip, ax.Service, ay.Service)
				}
				if p, clash := portClash(ax.Ports, ay.Ports); clash {
					t.Fatalf("%s held by %s and %s both on %s", ip, ax.Service, ay.Service, p)
				}
			}
		}
	}
	if sharedSeen == 0 {
		t.Fatal("fleet never shared an address; the sharing path went untested")
	}
}

// TestSequentialLowestFree: a /16 fills from the bottom, a release is refilled first.
func TestSequentialLowestFree(t *testing.T) {
	pools := mustPools(t, "big=10.1.0.0/16")
	used := NewUsed(nil)
	next := addr("10.1.0.1")
	for i := range 1000 {
		r := Request{Service: fmt.Sprintf("ns/s%d", i)}
		res := Allocate(pools, used, r, nil)
		if res.Err != nil || res.Allocation.IPs[0] != next {
			t.Fatalf("service %d got %v %v, want %s", i, res.Allocation.IPs, res.Err, next)
		}
		used.Add(res.Allocation)
		next = next.Next()
	}
	if len(used.runs) != 1 {
		t.Fatalf("1000 consecutive addresses should be one run, got %d", len(used.runs))
	}
	used.Remove("ns/s500")
	used.Remove("ns/s100")
	for _, want := range []string{"10.1.0.101", "10.1.1.245", "10.1.3.233"} {
		res := Allocate(pools, used, Request{Service: "ns/new-" + want}, nil)
		if res.Err != nil || res.Allocation.IPs[0] != addr(want) {
			t.Fatalf("got %v %v, want %s", res.Allocation.IPs, res.Err, want)
		}
		used.Add(res.Allocation)
	}
}

// BenchmarkAllocateDualStack allocates n RequireDualStack Services into a /16 + /112
// pool, committing each, as a leader does after a restart with an empty FSM. n=1000 is
// the headline number; n=10000 shows the cost per Service stays flat (no O(n²) scan).
func BenchmarkAllocateDualStack(b *testing.B) {
	pools := mustPools(b, "dual=10.1.0.0/16,2001:db8:1::/112")
	for _, n := range []int{1000, 10000} {
		reqs := make([]Request, n)
		for i := range reqs {
			reqs[i] = Request{Service: fmt.Sprintf("ns/svc-%05d", i), Policy: RequireDualStack, Families: []Family{V4, V6}, Ports: []Port{tcp(80)}}
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				used := NewUsed(nil)
				for _, r := range reqs {
					res := Allocate(pools, used, r, nil)
					if res.Err != nil {
						b.Fatal(res.Err)
					}
					used.Add(res.Allocation)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/service")
		})
	}
}

// BenchmarkReconcile1000 re-validates 1000 committed dual-stack allocations, the
// steady-state work of a resync.
func BenchmarkReconcile1000(b *testing.B) {
	pools := mustPools(b, "dual=10.1.0.0/16,2001:db8:1::/112")
	used := NewUsed(nil)
	reqs := make([]Request, 1000)
	for i := range reqs {
		reqs[i] = Request{Service: fmt.Sprintf("ns/svc-%04d", i), Policy: RequireDualStack, Families: []Family{V4, V6}}
		res := Allocate(pools, used, reqs[i], nil)
		used.Add(res.Allocation)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range reqs {
			ex, _ := used.Get(r.Service)
			if res := Allocate(pools, used, r, &ex); res.Changed {
				b.Fatal("changed")
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/service")
}

// BenchmarkNewUsed indexes 10000 dual-stack allocations, the cost of a leader change.
func BenchmarkNewUsed(b *testing.B) {
	_, allocs := fleet(b, mustPools(b, "dual=10.0.0.0/16,2001:db8:1::/112"), 10000)
	b.ReportAllocs()
	for b.Loop() {
		NewUsed(allocs)
	}
}
