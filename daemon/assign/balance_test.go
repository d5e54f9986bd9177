package assign

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
)

func nodeNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node-%02d", i)
	}
	return out
}

// v4 returns the i-th address of 10.0.0.0/8, v6 the i-th of 2001:db8::/64.
func v4(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }

func v6(i int) netip.Addr {
	b := netip.MustParseAddr("2001:db8::").As16()
	b[13], b[14], b[15] = byte(i>>16), byte(i>>8), byte(i)
	return netip.AddrFrom16(b)
}

func clusterFleet(n int, dual bool) []Service {
	svcs := make([]Service, n)
	for i := range svcs {
		svcs[i] = Service{Key: fmt.Sprintf("ns/svc-%04d", i), VIPs: []netip.Addr{v4(i)}, HasUsableEndpoint: true}
		if dual {
			svcs[i].VIPs = append(svcs[i].VIPs, v6(i))
		}
	}
	return svcs
}

func TestBalance(t *testing.T) {
	cases := []struct {
		name     string
		nodes    int
		services int
		dual     bool
		maxSkew  int
	}{
		{name: "30 services on 3 nodes", nodes: 3, services: 30, maxSkew: 1},
		{name: "31 services on 3 nodes", nodes: 3, services: 31, maxSkew: 1},
		{name: "1000 services on 10 nodes", nodes: 10, services: 1000, maxSkew: 1},
		{name: "7 services on 10 nodes", nodes: 10, services: 7, maxSkew: 1},
		{name: "1000 dual-stack services on 10 nodes", nodes: 10, services: 1000, dual: true, maxSkew: 2},
		{name: "1 node", nodes: 1, services: 50, maxSkew: 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			names := nodeNames(c.nodes)
			nodes := healthy(names...)
			svcs := clusterFleet(c.services, c.dual)
			ds := Assign(svcs, nodes, Current{})
			perSvc := 1
			if c.dual {
				perSvc = 2
			}
			if len(ds) != c.services*perSvc {
				t.Fatalf("%d decisions for %d VIPs", len(ds), c.services*perSvc)
			}
			cur := checkSettled(t, svcs, nodes, Current{}, ds)
			lo, hi := spread(loads(cur), names)
			if hi-lo > c.maxSkew {
				t.Fatalf("load spread %d..%d exceeds %d: %v", lo, hi, c.maxSkew, loads(cur))
			}
		})
	}
}

// TestFailoverSpreadsAndMovesOnlyTheDead: a node dies; only its VIPs move, and they
// spread over the survivors so they stay within one VIP of each other. When it comes
// back it takes nothing (sticky); new Services go to it first.
func TestFailoverSpreadsAndMovesOnlyTheDead(t *testing.T) {
	names := nodeNames(3)
	svcs := clusterFleet(30, false)
	cur := checkSettled(t, svcs, healthy(names...), Current{}, Assign(svcs, healthy(names...), Current{}))
	dead := "node-01"
	down := healthy(names...)
	down[1].Healthy = false
	ds := Assign(svcs, down, cur)
	for _, d := range ds {
		if d.From != dead || d.To == dead || d.Reason != ReasonOwnerDown {
			t.Fatalf("unexpected move %+v", d)
		}
	}
	if len(ds) != loads(cur)[dead] {
		t.Fatalf("%d moves, the dead node owned %d", len(ds), loads(cur)[dead])
	}
	after := checkSettled(t, svcs, down, cur, ds)
	if lo, hi := spread(loads(after), []string{"node-00", "node-02"}); hi-lo > 1 || lo+hi != 30 {
		t.Fatalf("survivors %v", loads(after))
	}
	back := healthy(names...)
	if ds := Assign(svcs, back, after); len(ds) != 0 {
		t.Fatalf("a returning node stole VIPs:\n%s", format(ds))
	}
	more := append(slices.Clone(svcs), clusterFleet(40, false)[30:]...)
	ds = Assign(more, back, after)
	checkSettled(t, more, back, after, ds)
	for _, d := range ds {
		if d.To != dead || d.From != "" {
			t.Fatalf("new service not placed on the emptiest node: %+v", d)
		}
	}
	if len(ds) != 10 {
		t.Fatalf("%d decisions for 10 new services", len(ds))
	}
}

// TestLocalFollowsEndpoint: a Local Service's only endpoint hops across nodes; the VIP
// follows it every time and nothing else moves.
func TestLocalFollowsEndpoint(t *testing.T) {
	names := nodeNames(4)
	nodes := healthy(names...)
	others := clusterFleet(8, false)
	cur := Current{}
	for step, at := range []string{"node-00", "node-03", "node-01", "node-01", "node-02"} {
		l := Service{Key: "ns/local", VIPs: []netip.Addr{netip.MustParseAddr("10.9.0.1")}, LocalTraffic: true, EndpointNodes: []string{at}, HasUsableEndpoint: true}
		svcs := append([]Service{l}, others...)
		ds := Assign(svcs, nodes, cur)
		cur = checkSettled(t, svcs, nodes, cur, ds)
		if got := cur[l.VIPs[0]].Node; got != at {
			t.Fatalf("step %d: VIP on %s, endpoint on %s", step, got, at)
		}
		for _, d := range ds {
			if step > 0 && d.VIP != l.VIPs[0] {
				t.Fatalf("step %d: unrelated move %+v", step, d)
			}
		}
	}
}

// randomWorld builds a mixed world: Cluster and Local, single and dual-stack, some
// sharing, some without endpoints; some nodes down or excluded; a partial, partly stale
// current owner table.
func randomWorld(r *rand.Rand, nSvc, nNodes int) ([]Service, []Node, Current) {
	names := nodeNames(nNodes)
	nodes := make([]Node, nNodes)
	for i, n := range names {
		nodes[i] = Node{Name: n, Healthy: r.IntN(6) != 0, Excluded: r.IntN(10) == 0}
	}
	svcs := make([]Service, nSvc)
	for i := range svcs {
		s := Service{Key: fmt.Sprintf("ns/s%03d", i), VIPs: []netip.Addr{v4(i)}, HasUsableEndpoint: r.IntN(8) != 0}
		if r.IntN(3) == 0 {
			s.VIPs = append(s.VIPs, v6(i))
		}
		if r.IntN(10) == 0 && i > 0 {
			s.VIPs = append(s.VIPs, v4(r.IntN(i))) // shares another Service's VIP
		}
		if r.IntN(2) == 0 {
			s.LocalTraffic = true
			for range r.IntN(3) {
				s.EndpointNodes = append(s.EndpointNodes, names[r.IntN(nNodes)])
			}
			s.HasUsableEndpoint = len(s.EndpointNodes) > 0
		}
		svcs[i] = s
	}
	cur := Current{}
	for i := range nSvc + 5 {
		if r.IntN(2) == 0 {
			cur[v4(i)] = Owner{Node: names[r.IntN(nNodes)], Epoch: uint64(i)}
		}
	}
	return svcs, nodes, cur
}

func shuffled(r *rand.Rand, svcs []Service, nodes []Node) ([]Service, []Node) {
	s := slices.Clone(svcs)
	for i := range s {
		s[i].VIPs = slices.Clone(s[i].VIPs)
		r.Shuffle(len(s[i].VIPs), func(a, b int) { s[i].VIPs[a], s[i].VIPs[b] = s[i].VIPs[b], s[i].VIPs[a] })
		s[i].EndpointNodes = slices.Clone(s[i].EndpointNodes)
		r.Shuffle(len(s[i].EndpointNodes), func(a, b int) {
			s[i].EndpointNodes[a], s[i].EndpointNodes[b] = s[i].EndpointNodes[b], s[i].EndpointNodes[a]
		})
	}
	r.Shuffle(len(s), func(a, b int) { s[a], s[b] = s[b], s[a] })
	n := slices.Clone(nodes)
	r.Shuffle(len(n), func(a, b int) { n[a], n[b] = n[b], n[a] })
	return s, n
}

// TestDeterministicAcrossLeaders: leaders that received the same world in different
// orders (informer caches, map iteration) make identical decisions.
func TestDeterministicAcrossLeaders(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for world := range 30 {
		svcs, nodes, cur := randomWorld(r, 120, 1+r.IntN(9))
		want := Assign(svcs, nodes, cur)
		for leader := range 5 {
			s, n := shuffled(r, svcs, nodes)
			if got := Assign(s, n, cur); !reflect.DeepEqual(got, want) {
				t.Fatalf("world %d leader %d disagrees:\n%s\nvs\n%s", world, leader, format(got), format(want))
			}
		}
	}
}

// TestRandomWorldsSettle checks the settled-state properties and stickiness on random
// worlds: a lone Service whose current owner is eligible for it and holds all its VIPs
// is never moved.
func TestRandomWorldsSettle(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for world := range 200 {
		svcs, nodes, cur := randomWorld(r, 60, 1+r.IntN(6))
		ds := Assign(svcs, nodes, cur)
		checkSettled(t, svcs, nodes, cur, ds)
		moved := map[netip.Addr]bool{}
		for _, d := range ds {
			moved[d.VIP] = true
		}
		for _, s := range svcs {
			if sharesVIP(s, svcs) {
				continue
			}
			o := cur[s.VIPs[0]].Node
			whole := o != ""
			for _, v := range s.VIPs {
				whole = whole && cur[v].Node == o
			}
			if whole && slices.Contains(Eligible(s, nodes), o) {
				for _, v := range s.VIPs {
					if moved[v] {
						t.Fatalf("world %d: %s moved from eligible owner %s", world, s.Key, o)
					}
				}
			}
		}
	}
}

func BenchmarkAssign1000on10Fresh(b *testing.B) {
	svcs := clusterFleet(1000, false)
	nodes := healthy(nodeNames(10)...)
	b.ReportAllocs()
	for b.Loop() {
		if len(Assign(svcs, nodes, Current{})) != 1000 {
			b.Fatal("wrong decision count")
		}
	}
}

func BenchmarkAssign1000on10Steady(b *testing.B) {
	svcs := clusterFleet(1000, false)
	nodes := healthy(nodeNames(10)...)
	cur := apply(Current{}, Assign(svcs, nodes, Current{}))
	b.ReportAllocs()
	for b.Loop() {
		if len(Assign(svcs, nodes, cur)) != 0 {
			b.Fatal("steady state moved")
		}
	}
}

func BenchmarkAssign1000on10NodeDown(b *testing.B) {
	svcs := clusterFleet(1000, true)
	nodes := healthy(nodeNames(10)...)
	cur := apply(Current{}, Assign(svcs, nodes, Current{}))
	nodes[3].Healthy = false
	b.ReportAllocs()
	for b.Loop() {
		if len(Assign(svcs, nodes, cur)) == 0 {
			b.Fatal("nothing moved")
		}
	}
}

// TestLargerGroupsPlacedFirst: placing a dual-stack Service (two VIPs) before the
// single-stack ones lets the singles even out the load; in VIP order the pair would
// land on top of a single.
func TestLargerGroupsPlacedFirst(t *testing.T) {
	svcs := []Service{
		cluster("ns/s1", "10.0.0.1"),
		cluster("ns/s2", "10.0.0.2"),
		cluster("ns/dual", "10.0.0.3", "2001:db8::3"),
	}
	nodes := healthy("a", "b")
	cur := checkSettled(t, svcs, nodes, Current{}, Assign(svcs, nodes, Current{}))
	if l := loads(cur); l["a"] != 2 || l["b"] != 2 {
		t.Fatalf("loads %v, want 2 and 2", l)
	}
}
