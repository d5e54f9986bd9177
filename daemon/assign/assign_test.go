package assign

import (
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestEligible(t *testing.T) {
	nodes := []Node{
		{Name: "c", Healthy: true},
		{Name: "a", Healthy: true},
		{Name: "down", Healthy: false},
		{Name: "excl", Healthy: true, Excluded: true},
		{Name: "b", Healthy: true},
	}
	cases := []struct {
		name  string
		svc   Service
		nodes []Node
		want  []string
	}{
		{name: "cluster: healthy, not excluded, sorted", svc: cluster("ns/s"), nodes: nodes, want: []string{"a", "b", "c"}},
		{name: "cluster without usable endpoint: none", svc: Service{Key: "ns/s"}, nodes: nodes, want: nil},
		{name: "cluster ignores where endpoints are", svc: Service{Key: "ns/s", HasUsableEndpoint: true, EndpointNodes: []string{"a"}}, nodes: nodes, want: []string{"a", "b", "c"}},
		{name: "local: endpoint nodes only", svc: local("ns/s", []string{"c", "a"}), nodes: nodes, want: []string{"a", "c"}},
		{name: "local: endpoint on a down node", svc: local("ns/s", []string{"down", "b"}), nodes: nodes, want: []string{"b"}},
		{name: "local: endpoint on an excluded node", svc: local("ns/s", []string{"excl"}), nodes: nodes, want: nil},
		{name: "local: endpoint on an unknown node", svc: local("ns/s", []string{"ghost", "a"}), nodes: nodes, want: []string{"a"}},
		{name: "local: no endpoints", svc: local("ns/s", nil), nodes: nodes, want: nil},
		{name: "local: several endpoints on one node", svc: local("ns/s", []string{"a", "a", "b", "a"}), nodes: nodes, want: []string{"a", "b"}},
		{name: "no nodes", svc: cluster("ns/s"), nodes: nil, want: nil},
		{
			name: "duplicate node entries: unhealthy wins", svc: cluster("ns/s"),
			nodes: []Node{{Name: "a", Healthy: true}, {Name: "a", Healthy: false}, {Name: "b", Healthy: true}}, want: []string{"b"},
		},
		{
			name: "duplicate node entries: excluded wins", svc: cluster("ns/s"),
			nodes: []Node{{Name: "a", Healthy: true, Excluded: true}, {Name: "a", Healthy: true}}, want: nil,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Eligible(c.svc, c.nodes); !slices.Equal(got, c.want) {
				t.Fatalf("Eligible = %v, want %v", got, c.want)
			}
		})
	}
}

// TestAssign lists decisions as "VIP service from->to (reason)" lines. Cases whose
// answer would depend on the hash tie-break give the nodes different loads or a single
// eligible node; the tie-break itself is tested separately.
func TestAssign(t *testing.T) {
	three := healthy("a", "b", "c")
	cases := []struct {
		name     string
		services []Service
		nodes    []Node
		current  Current
		want     string
	}{
		{
			name:     "nothing to do",
			services: nil, nodes: three, want: "",
		},
		{
			name:     "initial: local service goes to its endpoint node",
			services: []Service{local("ns/l", []string{"b"}, "10.0.0.1")}, nodes: three,
			want: "10.0.0.1 ns/l -->b (initial)\n",
		},
		{
			name:     "initial: least loaded node",
			services: []Service{cluster("ns/x", "10.0.0.1"), cluster("ns/y", "10.0.0.2"), cluster("ns/new", "10.0.0.3")},
			nodes:    three, current: owners("10.0.0.1", "a", "10.0.0.2", "b"),
			want: "10.0.0.3 ns/new -->c (initial)\n",
		},
		{
			name:     "sticky: current owner kept though imbalanced",
			services: []Service{cluster("ns/1", "10.0.0.1"), cluster("ns/2", "10.0.0.2"), cluster("ns/3", "10.0.0.3"), cluster("ns/4", "10.0.0.4")},
			nodes:    three, current: owners("10.0.0.1", "a", "10.0.0.2", "a", "10.0.0.3", "a", "10.0.0.4", "a"),
			want: "",
		},
		{
			name:     "owner down: moved to the least loaded",
			services: []Service{cluster("ns/x", "10.0.0.1"), cluster("ns/y", "10.0.0.2"), cluster("ns/z", "10.0.0.3")},
			nodes:    []Node{{Name: "a", Healthy: false}, {Name: "b", Healthy: true}, {Name: "c", Healthy: true}},
			current:  owners("10.0.0.1", "a", "10.0.0.2", "b", "10.0.0.3", "b"),
			want:     "10.0.0.1 ns/x a->c (owner down)\n",
		},
		{
			name:     "owner gone from the node list: owner down",
			services: []Service{cluster("ns/x", "10.0.0.1")},
			nodes:    healthy("b"), current: owners("10.0.0.1", "a"),
			want: "10.0.0.1 ns/x a->b (owner down)\n",
		},
		{
			name:     "owner excluded",
			services: []Service{cluster("ns/x", "10.0.0.1")},
			nodes:    []Node{{Name: "a", Healthy: true, Excluded: true}, {Name: "b", Healthy: true}},
			current:  owners("10.0.0.1", "a"),
			want:     "10.0.0.1 ns/x a->b (excluded)\n",
		},
		{
			name:     "local: VIP follows its only endpoint",
			services: []Service{local("ns/l", []string{"c"}, "10.0.0.1")},
			nodes:    three, current: owners("10.0.0.1", "a"),
			want: "10.0.0.1 ns/l a->c (owner no longer has local endpoint)\n",
		},
		{
			name:     "local: owner keeps it while it still has an endpoint",
			services: []Service{local("ns/l", []string{"c", "a"}, "10.0.0.1")},
			nodes:    three, current: owners("10.0.0.1", "a"),
			want: "",
		},
		{
			name:     "local: endpoints only on a down node: withdrawn",
			services: []Service{local("ns/l", []string{"a"}, "10.0.0.1")},
			nodes:    []Node{{Name: "a", Healthy: false}, {Name: "b", Healthy: true}},
			current:  owners("10.0.0.1", "a"),
			want:     "10.0.0.1 ns/l a->- (no eligible node)\n",
		},
		{
			name:     "local: endpoints vanished: withdrawn",
			services: []Service{local("ns/l", nil, "10.0.0.1")},
			nodes:    three, current: owners("10.0.0.1", "a"),
			want: "10.0.0.1 ns/l a->- (no usable endpoint)\n",
		},
		{
			name:     "cluster: no usable endpoint: withdrawn",
			services: []Service{{Key: "ns/x", VIPs: vips("10.0.0.1")}},
			nodes:    three, current: owners("10.0.0.1", "b"),
			want: "10.0.0.1 ns/x b->- (no usable endpoint)\n",
		},
		{
			name:     "cluster: no usable endpoint and no owner: nothing",
			services: []Service{{Key: "ns/x", VIPs: vips("10.0.0.1")}},
			nodes:    three, want: "",
		},
		{
			name:     "every node excluded: withdrawn",
			services: []Service{cluster("ns/x", "10.0.0.1")},
			nodes:    []Node{{Name: "a", Healthy: true, Excluded: true}},
			current:  owners("10.0.0.1", "a"),
			want:     "10.0.0.1 ns/x a->- (no eligible node)\n",
		},
		{
			name:     "no nodes at all: withdrawn",
			services: []Service{cluster("ns/x", "10.0.0.1")},
			current:  owners("10.0.0.1", "a"),
			want:     "10.0.0.1 ns/x a->- (no eligible node)\n",
		},
		{
			name:     "service removed: owner dropped",
			services: []Service{cluster("ns/x", "10.0.0.1")},
			nodes:    three, current: owners("10.0.0.1", "a", "10.0.0.9", "b"),
			want: "10.0.0.9  b->- (service removed)\n",
		},
		{
			name:     "dual-stack: second family joins the first",
			services: []Service{cluster("ns/d", "10.0.0.1", "2001:db8::1")},
			nodes:    three, current: owners("10.0.0.1", "b"),
			want: "2001:db8::1 ns/d -->b (initial)\n",
		},
		{
			name:     "dual-stack: both move together when the owner dies",
			services: []Service{cluster("ns/d", "10.0.0.1", "2001:db8::1"), cluster("ns/o", "10.0.0.2")},
			nodes:    []Node{{Name: "a", Healthy: false}, {Name: "b", Healthy: true}, {Name: "c", Healthy: true}},
			current:  owners("10.0.0.1", "a", "2001:db8::1", "a", "10.0.0.2", "b"),
			want:     "10.0.0.1 ns/d a->c (owner down)\n2001:db8::1 ns/d a->c (owner down)\n",
		},
		{
			name:     "dual-stack: split owners reunite on the one that is still eligible",
			services: []Service{local("ns/d", []string{"c"}, "10.0.0.1", "2001:db8::1")},
			nodes:    three, current: owners("10.0.0.1", "a", "2001:db8::1", "c"),
			want: "10.0.0.1 ns/d a->c (owner no longer has local endpoint)\n",
		},
		{
			name:     "dual-stack: a VIP joining an eligible owner says so",
			services: []Service{cluster("ns/d", "10.0.0.1", "10.0.0.2", "2001:db8::1")},
			nodes:    three, current: owners("10.0.0.1", "a", "10.0.0.2", "a", "2001:db8::1", "b"),
			want: "2001:db8::1 ns/d b->a (follows the other VIPs of its service)\n",
		},
		{
			name:     "dual-stack groups count two VIPs of load",
			services: []Service{cluster("ns/d", "10.0.0.1", "2001:db8::1"), cluster("ns/x", "10.0.0.2"), cluster("ns/new", "10.0.0.3")},
			nodes:    healthy("a", "b"), current: owners("10.0.0.1", "a", "2001:db8::1", "a", "10.0.0.2", "b"),
			want: "10.0.0.3 ns/new -->b (initial)\n",
		},
		{
			name: "shared VIP: one announcer for all sharers, on the common node",
			services: []Service{
				cluster("ns/tcp", "10.0.0.1"),
				local("ns/udp", []string{"c"}, "10.0.0.1"),
			},
			nodes: three,
			want:  "10.0.0.1 ns/tcp+ns/udp -->c (initial)\n",
		},
		{
			name: "shared VIP: ties a sharer's other VIP too",
			services: []Service{
				cluster("ns/a", "10.0.0.1", "2001:db8::1"),
				local("ns/b", []string{"b"}, "10.0.0.1"),
			},
			nodes: three, current: owners("2001:db8::1", "a"),
			want: "10.0.0.1 ns/a+ns/b -->b (initial)\n2001:db8::1 ns/a a->b (another node can serve more of the services sharing the VIP)\n",
		},
		{
			name: "shared VIP: local sharer's endpoint moved",
			services: []Service{
				local("ns/a", []string{"b"}, "10.0.0.1"),
				local("ns/b", []string{"b"}, "10.0.0.1"),
			},
			nodes: three, current: owners("10.0.0.1", "a"),
			want: "10.0.0.1 ns/a+ns/b a->b (owner no longer has local endpoint)\n",
		},
		{
			name: "shared VIP: a sharer without endpoints does not drag the others down",
			services: []Service{
				{Key: "ns/dead", VIPs: vips("10.0.0.1")},
				local("ns/live", []string{"c"}, "10.0.0.1"),
			},
			nodes: three,
			want:  "10.0.0.1 ns/dead+ns/live -->c (initial)\n",
		},
		{
			name: "shared VIP: all sharers without endpoints: withdrawn",
			services: []Service{
				{Key: "ns/x", VIPs: vips("10.0.0.1")},
				local("ns/y", nil, "10.0.0.1"),
			},
			nodes: three, current: owners("10.0.0.1", "a"),
			want: "10.0.0.1 ns/x+ns/y a->- (no usable endpoint)\n",
		},
		{
			name:     "invalid and empty VIPs are ignored",
			services: []Service{{Key: "ns/x", HasUsableEndpoint: true}, {Key: "ns/y", HasUsableEndpoint: true, VIPs: vips("10.0.0.1")}},
			nodes:    healthy("a"),
			want:     "10.0.0.1 ns/y -->a (initial)\n",
		},
		{
			name:     "owner entries without a node are no owner",
			services: []Service{cluster("ns/x", "10.0.0.1")},
			nodes:    healthy("a"), current: Current{vip("10.0.0.1"): {}, vip("10.0.0.9"): {}},
			want: "10.0.0.1 ns/x -->a (initial)\n",
		},
		{
			name:     "a VIP listed twice in a service counts once",
			services: []Service{cluster("ns/x", "10.0.0.1", "10.0.0.1")},
			nodes:    healthy("a"),
			want:     "10.0.0.1 ns/x -->a (initial)\n",
		},
		{
			name:     "new node does not steal sticky VIPs",
			services: []Service{cluster("ns/x", "10.0.0.1"), cluster("ns/y", "10.0.0.2")},
			nodes:    healthy("a", "b", "fresh"), current: owners("10.0.0.1", "a", "10.0.0.2", "a"),
			want: "",
		},
		{
			name:     "decisions sorted by VIP, v4 before v6",
			services: []Service{cluster("ns/z", "2001:db8::1"), cluster("ns/y", "10.0.0.9"), cluster("ns/x", "10.0.0.10")},
			nodes:    healthy("a"),
			want:     "10.0.0.9 ns/y -->a (initial)\n10.0.0.10 ns/x -->a (initial)\n2001:db8::1 ns/z -->a (initial)\n",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cur := c.current
			if cur == nil {
				cur = Current{}
			}
			ds := Assign(c.services, c.nodes, cur)
			if got := format(ds); got != c.want {
				t.Fatalf("decisions:\n%s\nwant:\n%s", got, c.want)
			}
			checkSettled(t, c.services, c.nodes, cur, ds)
		})
	}
}

// TestAssignDoesNotMutate: the caller's inputs are left alone.
func TestAssignDoesNotMutate(t *testing.T) {
	svcs := []Service{local("ns/b", []string{"n2", "n1"}, "10.0.0.2", "10.0.0.1"), cluster("ns/a", "10.0.0.2")}
	nodes := []Node{{Name: "n2", Healthy: true}, {Name: "n1", Healthy: true}}
	cur := owners("10.0.0.9", "n1")
	Assign(svcs, nodes, cur)
	if svcs[0].Key != "ns/b" || svcs[0].VIPs[0] != vip("10.0.0.2") || svcs[0].EndpointNodes[0] != "n2" || nodes[0].Name != "n2" || len(cur) != 1 {
		t.Fatalf("inputs changed: %+v %+v %v", svcs, nodes, cur)
	}
}

// TestTieBreakIsRendezvous: among equally loaded nodes the highest weight wins, and it
// is not simply the lowest name.
func TestTieBreakIsRendezvous(t *testing.T) {
	nodes := healthy("n0", "n1", "n2", "n3", "n4")
	winners := map[string]int{}
	for i := range 200 {
		v := vip("10.0.0.0").As4()
		v[2], v[3] = byte(i>>8), byte(i)
		addr := netip.AddrFrom4(v)
		ds := Assign([]Service{cluster("ns/x", addr.String())}, nodes, Current{})
		if len(ds) != 1 {
			t.Fatalf("got %v", ds)
		}
		best := ""
		for _, n := range nodes {
			if best == "" || weight(addr, n.Name) > weight(addr, best) {
				best = n.Name
			}
		}
		if ds[0].To != best {
			t.Fatalf("%s went to %s, highest weight is %s", addr, ds[0].To, best)
		}
		winners[best]++
	}
	for _, n := range nodes {
		if winners[n.Name] < 20 {
			t.Fatalf("rendezvous is lopsided: %v", winners)
		}
	}
}

// TestWeightGolden pins the hash: if these change, leaders running different builds
// would disagree on tie-breaks.
func TestWeightGolden(t *testing.T) {
	cases := []struct {
		vip, node string
		want      uint64
	}{
		{"10.0.0.1", "node-a", 0xe6e9e9490d417f6a},
		{"10.0.0.1", "node-b", 0xa18aa6e699c42c05},
		{"2001:db8::1", "node-a", 0xe99c61399d90b36f},
		{"10.0.0.2", "", 0x6de7421c50ee35e4},
	}
	for _, c := range cases {
		if got := weight(vip(c.vip), c.node); got != c.want {
			t.Errorf("weight(%s, %q) = %#x, want %#x", c.vip, c.node, got, c.want)
		}
	}
	// The FNV part is the standard FNV-1a 64 of hash/fnv.
	h := fnv.New64a()
	b := vip("10.0.0.1").As16()
	h.Write(b[:])
	h.Write([]byte("node-a"))
	if got := fnv1a(fnvOffset, append(b[:], "node-a"...)...); got != h.Sum64() {
		t.Errorf("fnv1a = %#x, hash/fnv says %#x", got, h.Sum64())
	}
	if weight(vip("10.0.0.1"), "ab") == weight(vip("10.0.0.1"), "ba") {
		t.Error("weight ignores name order")
	}
}

func TestDecisionNamesSharers(t *testing.T) {
	ds := Assign([]Service{cluster("ns/c", "10.0.0.1"), cluster("ns/a", "10.0.0.1"), cluster("ns/b", "10.0.0.1", "10.0.0.2")}, healthy("n"), Current{})
	if len(ds) != 2 {
		t.Fatalf("got %s", format(ds))
	}
	if ds[0].Service != "ns/a" || !slices.Equal(ds[0].SharedWith, []string{"ns/b", "ns/c"}) {
		t.Fatalf("shared VIP decision names %q + %v", ds[0].Service, ds[0].SharedWith)
	}
	if ds[1].Service != "ns/b" || ds[1].SharedWith != nil {
		t.Fatalf("unshared VIP decision names %q + %v", ds[1].Service, ds[1].SharedWith)
	}
	if !strings.Contains(format(ds), "ns/a+ns/b+ns/c") {
		t.Fatal(format(ds))
	}
}

// TestSplitOwnersTieBreak: a dual-stack Service found split over two eligible nodes,
// one VIP each, reunites on the node with the higher rendezvous weight, whichever of
// its VIPs that node held.
func TestSplitOwnersTieBreak(t *testing.T) {
	svcs := []Service{cluster("ns/d", "10.0.0.1", "2001:db8::1")}
	nodes := healthy("a", "b")
	want := "a"
	if weight(vip("10.0.0.1"), "b") > weight(vip("10.0.0.1"), "a") {
		want = "b"
	}
	for _, cur := range []Current{owners("10.0.0.1", "a", "2001:db8::1", "b"), owners("10.0.0.1", "b", "2001:db8::1", "a")} {
		ds := Assign(svcs, nodes, cur)
		if len(ds) != 1 || ds[0].To != want || ds[0].Reason != ReasonFollowsService {
			t.Fatalf("owners %v: got\n%s want one move to %s", cur, format(ds), want)
		}
		checkSettled(t, svcs, nodes, cur, ds)
	}
}
