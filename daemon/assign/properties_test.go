package assign

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// TestMinimalDisruption: on random worlds, a VIP only ever moves between two nodes
// when its owner cannot keep it (down, excluded, no local endpoint, another node
// serves more sharers) or it joins the rest of its group.
func TestMinimalDisruption(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	movable := []string{ReasonOwnerDown, ReasonExcluded, ReasonNoLocalEndpoint, ReasonSharedElsewhere, ReasonFollowsService}
	for world := range 200 {
		svcs, nodes, cur := randomWorld(r, 60, 1+r.IntN(6))
		table := newTable(nodes)
		for _, d := range Assign(svcs, nodes, cur) {
			if d.From == "" || d.To == "" {
				continue
			}
			if !slices.Contains(movable, d.Reason) {
				t.Fatalf("world %d: move %+v with reason %q", world, d, d.Reason)
			}
			n, known := table.nodes[d.From]
			switch d.Reason {
			case ReasonOwnerDown:
				if known && n.Healthy {
					t.Fatalf("world %d: %s said down but is healthy", world, d.From)
				}
			case ReasonExcluded:
				if !n.Excluded {
					t.Fatalf("world %d: %s said excluded but is not", world, d.From)
				}
			case ReasonNoLocalEndpoint:
				for _, s := range svcs {
					if slices.Contains(s.VIPs, d.VIP) && slices.Contains(table.eligible(s), d.From) {
						t.Fatalf("world %d: %s said to lack an endpoint of %s but is eligible", world, d.From, s.Key)
					}
				}
			case ReasonFollowsService:
				if cur[d.VIP].Node == "" {
					t.Fatalf("world %d: follow without an owner: %+v", world, d)
				}
			}
		}
	}
}

// TestFlappingNodes: ten nodes, a thousand Services, nodes going down and coming back
// one round at a time. Each round moves exactly the VIPs of nodes that went down,
// never a VIP of a healthy node, and always settles.
func TestFlappingNodes(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	names := nodeNames(10)
	nodes := healthy(names...)
	svcs := clusterFleet(1000, false)
	cur := apply(Current{}, Assign(svcs, nodes, Current{}))
	for round := range 40 {
		i := r.IntN(len(nodes))
		nodes[i].Healthy = !nodes[i].Healthy
		if !slices.ContainsFunc(nodes, func(n Node) bool { return n.Healthy }) {
			nodes[i].Healthy = true
		}
		ds := Assign(svcs, nodes, cur)
		down := map[string]bool{}
		for _, n := range nodes {
			down[n.Name] = !n.Healthy
		}
		want := 0
		for _, o := range cur {
			if down[o.Node] {
				want++
			}
		}
		if len(ds) != want {
			t.Fatalf("round %d: %d moves, %d VIPs sat on down nodes", round, len(ds), want)
		}
		for _, d := range ds {
			if !down[d.From] || down[d.To] || d.Reason != ReasonOwnerDown {
				t.Fatalf("round %d: bad move %+v", round, d)
			}
		}
		cur = checkSettled(t, svcs, nodes, cur, ds)
	}
}

// TestEveryReasonReachable: each Reason constant is produced by some situation, and
// the situation is the one the constant names.
func TestEveryReasonReachable(t *testing.T) {
	three := healthy("a", "b", "c")
	cases := []struct {
		reason   string
		services []Service
		nodes    []Node
		current  Current
	}{
		{ReasonInitial, []Service{cluster("ns/x", "10.0.0.1")}, three, Current{}},
		{ReasonOwnerDown, []Service{cluster("ns/x", "10.0.0.1")}, []Node{{Name: "a"}, {Name: "b", Healthy: true}}, owners("10.0.0.1", "a")},
		{ReasonExcluded, []Service{cluster("ns/x", "10.0.0.1")}, []Node{{Name: "a", Healthy: true, Excluded: true}, {Name: "b", Healthy: true}}, owners("10.0.0.1", "a")},
		{ReasonNoLocalEndpoint, []Service{local("ns/x", []string{"b"}, "10.0.0.1")}, three, owners("10.0.0.1", "a")},
		{ReasonFollowsService, []Service{cluster("ns/x", "10.0.0.1", "10.0.0.2", "10.0.0.3")}, three, owners("10.0.0.1", "a", "10.0.0.2", "a", "10.0.0.3", "b")},
		{ReasonSharedElsewhere, []Service{cluster("ns/x", "10.0.0.1"), local("ns/y", []string{"b"}, "10.0.0.1")}, three, owners("10.0.0.1", "a")},
		{ReasonNoUsableEndpoint, []Service{{Key: "ns/x", VIPs: vips("10.0.0.1")}}, three, owners("10.0.0.1", "a")},
		{ReasonNoEligibleNode, []Service{cluster("ns/x", "10.0.0.1")}, []Node{{Name: "a"}}, owners("10.0.0.1", "a")},
		{ReasonServiceRemoved, nil, three, owners("10.0.0.1", "a")},
	}
	for _, c := range cases {
		t.Run(c.reason, func(t *testing.T) {
			ds := Assign(c.services, c.nodes, c.current)
			if !slices.ContainsFunc(ds, func(d Decision) bool { return d.Reason == c.reason }) {
				t.Fatalf("no %q decision in\n%s", c.reason, format(ds))
			}
		})
	}
}

// TestLocalReadsEndpointNodesClusterReadsFlag pins which field each policy reads, so
// the watcher knows what it must fill in.
func TestLocalReadsEndpointNodesClusterReadsFlag(t *testing.T) {
	nodes := healthy("a", "b")
	if got := Eligible(Service{LocalTraffic: true, EndpointNodes: []string{"b"}}, nodes); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("local with endpoint nodes but flag unset: %v", got)
	}
	if got := Eligible(Service{HasUsableEndpoint: true}, nodes); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("cluster with flag but no endpoint nodes: %v", got)
	}
	got := Eligible(Service{HasUsableEndpoint: true}, nodes)
	got[0] = "mutated"
	if again := Eligible(Service{HasUsableEndpoint: true}, nodes); again[0] != "a" {
		t.Fatal("Eligible returned a slice shared between calls")
	}
}

// TestManyVIPsOneNodeLoad: load counts VIPs, so a node holding one big sticky group
// gets no new single-VIP Services until the others catch up.
func TestManyVIPsOneNodeLoad(t *testing.T) {
	big := Service{Key: "ns/big", HasUsableEndpoint: true}
	cur := Current{}
	for i := range 5 {
		v := netip.AddrFrom4([4]byte{10, 1, 0, byte(i)})
		big.VIPs = append(big.VIPs, v)
		cur[v] = Owner{Node: "a"}
	}
	svcs := []Service{big}
	for i := range 8 {
		svcs = append(svcs, cluster(fmt.Sprintf("ns/s%d", i), fmt.Sprintf("10.0.0.%d", i+1)))
	}
	ds := Assign(svcs, healthy("a", "b"), cur)
	final := checkSettled(t, svcs, healthy("a", "b"), cur, ds)
	if lo, hi := spread(loads(final), []string{"a", "b"}); lo != 6 || hi != 7 {
		t.Fatalf("loads %v, want 6 and 7 (b filled to 5 first)", loads(final))
	}
}
