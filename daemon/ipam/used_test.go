package ipam

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func alloc(svc, pool string, ips ...string) Allocation {
	a := Allocation{Service: svc, Pool: pool}
	for _, s := range ips {
		a.IPs = append(a.IPs, addr(s))
	}
	return a
}

func shared(a Allocation, key string, ports ...Port) Allocation {
	a.SharingKey = key
	a.Ports = normPorts(ports)
	return a
}

func tcp(n int32) Port { return Port{Protocol: "TCP", Port: n} }
func udp(n int32) Port { return Port{Protocol: "UDP", Port: n} }

func holderNames(hs []Allocation) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Service)
	}
	return out
}

func TestUsedHoldersAndGet(t *testing.T) {
	u := NewUsed([]Allocation{
		shared(alloc("ns/b", "a", "10.0.0.1", "2001:db8::1"), "k", udp(53)),
		shared(alloc("ns/a", "a", "10.0.0.1"), "k", tcp(53)),
		alloc("ns/c", "a", "10.0.0.2"),
	})
	if got := holderNames(u.Holders(addr("10.0.0.1"))); !slices.Equal(got, []string{"ns/a", "ns/b"}) {
		t.Fatalf("holders of .1 = %v, want sorted [ns/a ns/b]", got)
	}
	if got := holderNames(u.Holders(addr("2001:db8::1"))); !slices.Equal(got, []string{"ns/b"}) {
		t.Fatalf("holders of v6 = %v", got)
	}
	if got := u.Holders(addr("10.0.0.3")); got != nil {
		t.Fatalf("holders of free address = %v", got)
	}
	if u.Len() != 3 {
		t.Fatalf("Len = %d", u.Len())
	}
	g, ok := u.Get("ns/b")
	if !ok || g.SharingKey != "k" || len(g.IPs) != 2 {
		t.Fatalf("Get(ns/b) = %+v %v", g, ok)
	}
	// Returned values are copies: mutating them must not leak into the index.
	g.IPs[0] = addr("192.0.2.1")
	u.Holders(addr("10.0.0.1"))[0].IPs[0] = addr("192.0.2.1")
	if g2, _ := u.Get("ns/b"); g2.IPs[0] != addr("10.0.0.1") {
		t.Fatalf("Get leaked internal slice: %v", g2.IPs)
	}
	if h := u.Holders(addr("10.0.0.1")); h[0].IPs[0] != addr("10.0.0.1") {
		t.Fatalf("Holders leaked internal slice: %v", h[0].IPs)
	}
	if _, ok := u.Get("ns/none"); ok {
		t.Fatal("Get(unknown) reported ok")
	}
}

func TestUsedAddReplacesAndRemoveFrees(t *testing.T) {
	u := NewUsed(nil)
	in := alloc("ns/a", "a", "10.0.0.1", "10.0.0.1", "2001:db8::1")
	in.IPs = append(in.IPs, netip.Addr{})
	u.Add(in)
	in.IPs[0] = addr("10.9.9.9") // caller reuses its slice
	if got, _ := u.Get("ns/a"); len(got.IPs) != 2 {
		t.Fatalf("Add must drop invalid and duplicate addresses and copy: %v", got.IPs)
	}
	u.Add(alloc("ns/a", "a", "2001:db8::5", "10.0.0.5"))
	if got, _ := u.Get("ns/a"); !slices.Equal(got.IPs, addrs("2001:db8::5", "10.0.0.5")) {
		t.Fatalf("Add must keep the primary-first order: %v", got.IPs)
	}
	if len(u.Holders(addr("10.0.0.1"))) != 0 || len(u.Holders(addr("2001:db8::1"))) != 0 {
		t.Fatal("Add did not release the Service's previous addresses")
	}
	if ip, _ := u.lowestFree(rng("10.0.0.1", "10.0.0.9")); ip != addr("10.0.0.1") {
		t.Fatalf("lowest free after replace = %v", ip)
	}
	u.Remove("ns/a")
	u.Remove("ns/a") // twice is harmless
	if u.Len() != 0 || len(u.runs) != 0 || len(u.holders) != 0 {
		t.Fatalf("index not empty after Remove: %+v", u)
	}
}

func TestUsedSharingIndex(t *testing.T) {
	u := NewUsed([]Allocation{
		shared(alloc("ns/a", "a", "10.0.0.7"), "k", tcp(80)),
		shared(alloc("ns/b", "a", "10.0.0.7"), "k", tcp(443)),
		shared(alloc("ns/c", "a", "10.0.0.3"), "k", tcp(80)),
		shared(alloc("ns/d", "a", "10.0.0.9"), "other", tcp(80)),
	})
	if got := u.sharedUnder("k"); !slices.Equal(got, []netip.Addr{addr("10.0.0.3"), addr("10.0.0.7")}) {
		t.Fatalf("sharedUnder(k) = %v, want sorted .3 .7", got)
	}
	u.Remove("ns/a")
	if got := u.sharedUnder("k"); len(got) != 2 {
		t.Fatalf("ns/b still holds .7 under k; got %v", got)
	}
	u.Remove("ns/b")
	u.Remove("ns/c")
	if got := u.sharedUnder("k"); len(got) != 0 {
		t.Fatalf("sharedUnder(k) after removing all = %v", got)
	}
	if _, ok := u.byKey["k"]; ok {
		t.Fatal("empty key set left behind")
	}
	if got := u.sharedUnder("other"); len(got) != 1 {
		t.Fatalf("sharedUnder(other) = %v", got)
	}
}

func TestUsedClashes(t *testing.T) {
	u := NewUsed([]Allocation{
		alloc("ns/plain", "a", "10.0.0.1"),
		shared(alloc("ns/web", "a", "10.0.0.2"), "k", tcp(80), tcp(443)),
		shared(alloc("ns/dns", "a", "10.0.0.2"), "k", udp(53)),
	})
	cases := []struct {
		name string
		ip   string
		req  Request
		want string // "" = may hold
	}{
		{name: "free", ip: "10.0.0.9", req: Request{Service: "ns/x"}},
		{name: "self", ip: "10.0.0.1", req: Request{Service: "ns/plain"}},
		{name: "held, no keys", ip: "10.0.0.1", req: Request{Service: "ns/x"}, want: "ip 10.0.0.1 is in use by ns/plain"},
		{name: "held without key, we have one", ip: "10.0.0.1", req: Request{Service: "ns/x", SharingKey: "k"}, want: "in use by ns/plain"},
		{name: "held with key, we have none", ip: "10.0.0.2", req: Request{Service: "ns/x"}, want: "in use by ns/dns"},
		{name: "other key", ip: "10.0.0.2", req: Request{Service: "ns/x", SharingKey: "j"}, want: `under sharing key "k", not "j"`},
		{name: "same key, new port", ip: "10.0.0.2", req: Request{Service: "ns/x", SharingKey: "k", Ports: []Port{tcp(53)}}},
		{name: "same key, clash with first", ip: "10.0.0.2", req: Request{Service: "ns/x", SharingKey: "k", Ports: []Port{tcp(443)}}, want: "shared with ns/web, which already uses port TCP/443"},
		{name: "same key, clash with second", ip: "10.0.0.2", req: Request{Service: "ns/x", SharingKey: "k", Ports: []Port{{Protocol: "udp", Port: 53}}}, want: "ns/dns, which already uses port UDP/53"},
		{name: "self among sharers ignored", ip: "10.0.0.2", req: Request{Service: "ns/web", SharingKey: "k", Ports: []Port{tcp(80)}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := u.clashes(addr(c.ip), &c.req, normPorts(c.req.Ports))
			if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
				t.Fatalf("clashes = %q, want %q", got, c.want)
			}
		})
	}
}

// TestUsedRunsModel drives the run index with random adds and removes and compares
// every answer with a plain set, including runs that touch the ends of the family.
func TestUsedRunsModel(t *testing.T) {
	bases := []Range{
		rng("10.0.0.0", "10.0.0.63"),
		rng("255.255.255.192", "255.255.255.255"),
		rng("2001:db8::", "2001:db8::3f"),
		rng("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffc0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
		rng("0.0.0.0", "0.0.0.63"),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, base := range bases {
		var space []netip.Addr
		for ip := base.First; base.Contains(ip); ip = ip.Next() {
			space = append(space, ip)
			if ip == base.Last {
				break
			}
		}
		u := NewUsed(nil)
		model := map[netip.Addr]bool{}
		for step := 0; step < 3000; step++ {
			ip := space[r.IntN(len(space))]
			svc := ip.String()
			if model[ip] {
				u.Remove(svc)
				delete(model, ip)
			} else {
				u.Add(Allocation{Service: svc, IPs: []netip.Addr{ip}})
				model[ip] = true
			}
			checkRuns(t, u, model)
			lo, hi := r.IntN(len(space)), r.IntN(len(space))
			if lo > hi {
				lo, hi = hi, lo
			}
			q := Range{First: space[lo], Last: space[hi]}
			got, ok := u.lowestFree(q)
			want, wantOK := netip.Addr{}, false
			for _, ip := range space[lo : hi+1] {
				if !model[ip] {
					want, wantOK = ip, true
					break
				}
			}
			if got != want || ok != wantOK {
				t.Fatalf("%v step %d: lowestFree(%v) = %v %v, want %v %v; runs %v", base, step, q, got, ok, want, wantOK, u.runs)
			}
		}
	}
}

// checkRuns asserts the run index is sorted, maximal (no two runs touch) and covers
// exactly the model's addresses.
func checkRuns(t *testing.T, u *Used, model map[netip.Addr]bool) {
	t.Helper()
	n := 0
	for i, r := range u.runs {
		if r.First.Compare(r.Last) > 0 {
			t.Fatalf("run %v reversed", r)
		}
		if i > 0 {
			prev := u.runs[i-1]
			if prev.Last.Compare(r.First) >= 0 || prev.Last.Next() == r.First {
				t.Fatalf("runs %v and %v overlap or touch", prev, r)
			}
		}
		for ip := r.First; ; ip = ip.Next() {
			if !model[ip] {
				t.Fatalf("run %v covers free %v", r, ip)
			}
			n++
			if ip == r.Last {
				break
			}
		}
	}
	if n != len(model) {
		t.Fatalf("runs cover %d addresses, model has %d", n, len(model))
	}
}

func TestLowestFreeEdges(t *testing.T) {
	u := NewUsed([]Allocation{alloc("ns/top", "", "255.255.255.255"), alloc("ns/v6top", "", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")})
	if ip, ok := u.lowestFree(rng("255.255.255.255", "255.255.255.255")); ok {
		t.Fatalf("full last-address range reported free %v", ip)
	}
	if ip, ok := u.lowestFree(rng("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")); ok {
		t.Fatalf("full last v6 address reported free %v", ip)
	}
	// A v4 run must not make the first v6 address look used, nor the reverse.
	if ip, ok := u.lowestFree(rng("::", "::1")); !ok || ip != addr("::") {
		t.Fatalf("v6 range start = %v %v", ip, ok)
	}
}

func TestNewUsedDuplicateKeyLaterWins(t *testing.T) {
	u := NewUsed([]Allocation{alloc("ns/a", "a", "10.0.0.1"), alloc("ns/a", "a", "10.0.0.2")})
	if u.Len() != 1 || len(u.Holders(addr("10.0.0.1"))) != 0 || len(u.Holders(addr("10.0.0.2"))) != 1 {
		t.Fatalf("index %+v", u.byService)
	}
}
