package ipam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// churnPools are the pool layouts the churn test switches between: the full set, one
// pool removed, one shrunk, one renamed.
var churnPools = [][]string{
	{"p0=10.0.0.0/28,2001:db8::/124", "p1=10.0.1.0/29", "p2=2001:db8:1::/125", "p3=10.0.2.0/29,2001:db8:2::/125;auto-assign=false"},
	{"p0=10.0.0.0/28,2001:db8::/124", "p2=2001:db8:1::/125", "p3=10.0.2.0/29,2001:db8:2::/125;auto-assign=false"},
	{"p0=10.0.0.0/29,2001:db8::/126", "p1=10.0.1.0/29", "p2=2001:db8:1::/125", "p3=10.0.2.0/29,2001:db8:2::/125;auto-assign=false"},
	{"p0=10.0.0.0/28,2001:db8::/124", "p9=10.0.1.0/29", "p2=2001:db8:1::/125", "p3=10.0.2.0/29,2001:db8:2::/125;auto-assign=false"},
	{"p0=10.0.0.0/28", "p1=10.0.1.0/29,2001:db8:5::/126", "p3=10.0.2.0/29,2001:db8:2::/125;auto-assign=false"},
}

func randomRequest(r *rand.Rand, svc string) Request {
	req := Request{Service: svc, Policy: Policy(r.IntN(3))}
	switch r.IntN(3) {
	case 0:
		req.Families = []Family{V4, V6}
	case 1:
		req.Families = []Family{V6, V4}
	}
	if req.Policy == SingleStack && r.IntN(2) == 0 {
		req.Families = []Family{V6}
	}
	if req.Policy == RequireDualStack && len(req.Families) < 2 {
		req.Families = []Family{V4, V6}
	}
	if r.IntN(4) == 0 {
		req.Pool = []string{"p0", "p1", "p3", "gone"}[r.IntN(4)]
	}
	if r.IntN(5) == 0 {
		req.RequestedIPs = []netip.Addr{[]netip.Addr{addr("10.0.0.3"), addr("10.0.1.2"), addr("10.0.2.2"), addr("2001:db8::3"), addr("10.9.9.9")}[r.IntN(5)]}
	}
	req.SharingKey = []string{"", "", "k1", "k2"}[r.IntN(4)]
	for _, p := range []Port{tcp(80), udp(53), tcp(443)} {
		if r.IntN(2) == 0 {
			req.Ports = append(req.Ports, p)
		}
	}
	return req
}

// TestChurn drives many Services through request edits, deletions and pool edits,
// reconciling everything after each step as the leader does, and checks the
// invariants after every step:
//   - an address held twice is shared under one key with no common port;
//   - allocations respect the policy, the families, the named pool, requested IPs;
//   - an address outside every pool (or of a deleted named pool) is never handed out,
//     only kept by its holder;
//   - a Service whose request did not change never loses an address (pool edits and
//     other Services' churn do not move it);
//   - a new leader rebuilding the index in any order changes nothing.
func TestChurn(t *testing.T) {
	for seed := range uint64(churnSeeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { churn(t, seed) })
	}
}

const churnSeeds = 20

func churn(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 22))
	const n = 40
	reqs := map[string]Request{}
	used := NewUsed(nil)
	layout := 0
	for step := range 400 {
		changed := map[string]bool{}
		switch op := r.IntN(10); {
		case op < 5:
			svc := fmt.Sprintf("ns/s%02d", r.IntN(n))
			reqs[svc] = randomRequest(r, svc)
			changed[svc] = true
		case op < 7:
			svc := fmt.Sprintf("ns/s%02d", r.IntN(n))
			delete(reqs, svc)
			used.Remove(svc)
		default:
			layout = r.IntN(len(churnPools))
		}
		pools := mustPools(t, churnPools[layout]...)
		before := map[string]Allocation{}
		for svc := range reqs {
			if a, ok := used.Get(svc); ok {
				before[svc] = a
			}
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range reqs {
				if !yield(k) {
					return
				}
			}
		})
		for _, svc := range keys {
			var ex *Allocation
			if a, ok := before[svc]; ok {
				ex = &a
			}
			res := Allocate(pools, used, reqs[svc], ex)
			if res.Err != nil {
				if len(res.Allocation.IPs) != 0 {
					t.Fatalf("step %d: error with IPs %+v", step, res)
				}
				used.Remove(svc)
			} else {
				used.Add(res.Allocation)
			}
			if res.Err != nil && ex != nil && !changed[svc] {
				t.Fatalf("step %d: %s lost %v without a request change: %v", step, svc, ex.IPs, res.Err)
			}
		}
		checkChurn(t, step, pools, used, reqs, before, changed)
	}
	checkNewLeader(t, r, mustPools(t, churnPools[layout]...), used, reqs)
}

func checkChurn(t *testing.T, step int, pools []Pool, used *Used, reqs map[string]Request, before map[string]Allocation, changed map[string]bool) {
	t.Helper()
	for svc, req := range reqs {
		a, ok := used.Get(svc)
		if !ok {
			continue
		}
		wanted := req.Families
		if len(wanted) == 0 {
			wanted = []Family{V4}
		}
		if req.Policy == SingleStack {
			wanted = wanted[:1]
		}
		switch {
		case req.Policy == SingleStack && len(a.IPs) != 1,
			req.Policy == RequireDualStack && len(a.IPs) != 2,
			len(a.IPs) == 0 || len(a.IPs) > 2:
			t.Fatalf("step %d: %s (%s %v) holds %v", step, svc, req.Policy, req.Families, a.IPs)
		}
		for i, ip := range a.IPs {
			if !slices.Contains(wanted, familyOf(ip)) || i > 0 && familyOf(ip) == familyOf(a.IPs[0]) {
				t.Fatalf("step %d: %s wants %v, holds %v", step, svc, wanted, a.IPs)
			}
			p := poolOf(pools, ip)
			if p == nil {
				if !slices.Contains(before[svc].IPs, ip) {
					t.Fatalf("step %d: %s was given %s, which is in no pool", step, svc, ip)
				}
				continue
			}
			if p.Name != a.Pool && (req.Pool != a.Pool || poolByName(pools, a.Pool) != nil || !slices.Contains(before[svc].IPs, ip)) {
				t.Fatalf("step %d: %s holds %s of pool %s but records pool %s", step, svc, ip, p.Name, a.Pool)
			}
			if req.Pool != "" && p.Name != req.Pool && poolByName(pools, req.Pool) != nil {
				t.Fatalf("step %d: %s asked for pool %s, holds %s of %s", step, svc, req.Pool, ip, p.Name)
			}
			if len(req.RequestedIPs) == 0 && req.Pool == "" && !p.AutoAssign && before[svc].Pool != p.Name {
				t.Fatalf("step %d: %s auto-assigned %s from auto-assign=false pool %s", step, svc, ip, p.Name)
			}
		}
		if len(req.RequestedIPs) > 0 && !slices.Equal(a.IPs, req.RequestedIPs) {
			t.Fatalf("step %d: %s requested %v, holds %v", step, svc, req.RequestedIPs, a.IPs)
		}
		if prev, ok := before[svc]; ok && !changed[svc] {
			for _, ip := range prev.IPs {
				if !slices.Contains(a.IPs, ip) {
					t.Fatalf("step %d: %s lost %s without a request change (%v -> %v)", step, svc, ip, prev.IPs, a.IPs)
				}
			}
		}
		for _, ip := range a.IPs {
			hs := used.Holders(ip)
			for i := range hs {
				for j := range hs[:i] {
					x, y := hs[i], hs[j]
					if x.SharingKey == "" || x.SharingKey != y.SharingKey {
						t.Fatalf("step %d: %s held by %s and %s without a common key", step, ip, x.Service, y.Service)
					}
					if p, clash := portClash(x.Ports, y.Ports); clash {
						t.Fatalf("step %d: %s held by %s and %s both on %s", step, ip, x.Service, y.Service, p)
					}
				}
			}
		}
	}
}

func checkNewLeader(t *testing.T, r *rand.Rand, pools []Pool, used *Used, reqs map[string]Request) {
	t.Helper()
	var allocs []Allocation
	for svc := range reqs {
		if a, ok := used.Get(svc); ok {
			allocs = append(allocs, a)
		}
	}
	if len(allocs) < 10 {
		t.Fatalf("only %d allocations at the end; the churn is too harsh to test much", len(allocs))
	}
	r.Shuffle(len(allocs), func(i, j int) { allocs[i], allocs[j] = allocs[j], allocs[i] })
	fresh := NewUsed(allocs)
	for _, a := range allocs {
		res := Allocate(pools, fresh, reqs[a.Service], &a)
		if res.Err != nil || res.Changed {
			t.Fatalf("new leader changed %s: %+v", a.Service, res)
		}
	}
}

func poolByName(pools []Pool, name string) *Pool {
	for i := range pools {
		if pools[i].Name == name {
			return &pools[i]
		}
	}
	return nil
}
