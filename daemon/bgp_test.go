package daemon

import (
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/raftvip/raftvip/daemon/assign"
	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/vip/bgp"
)

var (
	cpVIP4 = netip.MustParseAddr("198.51.100.100")
	cpVIP6 = netip.MustParseAddr("2001:db8:100::100")
	svcA   = netip.MustParseAddr("198.51.100.120")
	svcA6  = netip.MustParseAddr("2001:db8:100::120")
	svcB   = netip.MustParseAddr("198.51.100.121")
	shared = netip.MustParseAddr("198.51.100.130")
)

// healthyNodes marks the named nodes healthy and the rest of all unhealthy.
func healthyNodes(all []string, healthy ...string) []assign.Node {
	var out []assign.Node
	for _, n := range all {
		out = append(out, assign.Node{Name: n, Healthy: slices.Contains(healthy, n)})
	}
	return out
}

// apiState is a state in which the named voters report a healthy API server.
func apiState(ever bool, healthy ...string) raftstore.State {
	st := raftstore.NewState()
	st.APIServerEverHealthy = ever
	for _, n := range []string{"cp1", "cp2", "cp3"} {
		st.Nodes[n] = raftstore.NodeInfo{Name: n, Role: raftstore.RoleVoter, APIServerHealthy: slices.Contains(healthy, n)}
	}
	return st
}

func TestControlPlaneAdvertisers(t *testing.T) {
	voters := []string{"cp3", "cp1", "cp2"}
	all := []string{"cp1", "cp2", "cp3", "w1"}
	cases := []struct {
		name  string
		st    raftstore.State
		nodes []assign.Node
		want  []string
	}{
		{"bootstrap: every live voter on raft health alone", apiState(false), healthyNodes(all, "cp1", "cp2", "cp3", "w1"), []string{"cp1", "cp2", "cp3"}},
		{"bootstrap: a silent voter does not advertise", apiState(false), healthyNodes(all, "cp1", "cp3"), []string{"cp1", "cp3"}},
		{"every API server healthy", apiState(true, "cp1", "cp2", "cp3"), healthyNodes(all, "cp1", "cp2", "cp3"), []string{"cp1", "cp2", "cp3"}},
		{"a dead API server withdraws its voter", apiState(true, "cp1", "cp3"), healthyNodes(all, "cp1", "cp2", "cp3"), []string{"cp1", "cp3"}},
		{"a healthy API server on a silent node does not count", apiState(true, "cp1", "cp2", "cp3"), healthyNodes(all, "cp1", "cp3"), []string{"cp1", "cp3"}},
		{"no API server healthy now: every live voter", apiState(true), healthyNodes(all, "cp1", "cp2"), []string{"cp1", "cp2"}},
		{"the only healthy API server's node is silent: every live voter", apiState(true, "cp3"), healthyNodes(all, "cp1", "cp2"), []string{"cp1", "cp2"}},
		{"a worker never advertises it", apiState(true, "cp1"), healthyNodes(all, "cp1", "w1"), []string{"cp1"}},
		{"no live voter", apiState(true, "cp1"), healthyNodes(all, "w1"), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := advertiserSets(advertiserInput{ControlPlaneVIPs: []netip.Addr{cpVIP4, cpVIP6}, Voters: voters,
				Nodes: tc.nodes, State: tc.st, ServicesKnown: true})
			want := map[netip.Addr][]string{}
			if tc.want != nil {
				want[cpVIP4], want[cpVIP6] = tc.want, tc.want
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("advertiserSets = %v, want %v", got, want)
			}
		})
	}
}

// svcState allocates svcA (dual-stack) to ns/a, svcB to ns/b and shared to ns/c
// and ns/d.
func svcState() raftstore.State {
	st := apiState(false)
	st.Allocations["ns/a"] = raftstore.Allocation{Service: "ns/a", Pool: "web", IPs: []string{svcA.String(), svcA6.String()}}
	st.Allocations["ns/b"] = raftstore.Allocation{Service: "ns/b", Pool: "db", IPs: []string{svcB.String()}}
	st.Allocations["ns/c"] = raftstore.Allocation{Service: "ns/c", Pool: "web", IPs: []string{shared.String()}, SharingKey: "k"}
	st.Allocations["ns/d"] = raftstore.Allocation{Service: "ns/d", Pool: "web", IPs: []string{shared.String()}, SharingKey: "k"}
	return st
}

func TestServiceAdvertisers(t *testing.T) {
	all := []string{"cp1", "cp2", "cp3", "w1", "w2"}
	up := healthyNodes(all, "cp1", "cp2", "cp3", "w1", "w2")
	excludedW2 := healthyNodes(all, "cp1", "cp2", "cp3", "w1", "w2")
	excludedW2[4].Excluded = true
	cluster := endpointInfo{HasEndpoints: true}
	local := func(nodes ...string) endpointInfo {
		return endpointInfo{LocalTraffic: true, HasEndpoints: len(nodes) > 0, EndpointNodes: nodes}
	}
	cases := []struct {
		name  string
		eps   map[string]endpointInfo
		nodes []assign.Node
		want  map[netip.Addr][]string
	}{
		{
			name:  "no Kubernetes view: every allocated Service is Cluster with endpoints",
			eps:   nil,
			nodes: healthyNodes(all, "cp1", "w1", "w2"),
			want:  map[netip.Addr][]string{svcA: {"cp1", "w1", "w2"}, svcA6: {"cp1", "w1", "w2"}, svcB: {"cp1", "w1", "w2"}, shared: {"cp1", "w1", "w2"}},
		},
		{
			name:  "Cluster: every healthy, non-excluded node; Local: only nodes with an endpoint",
			eps:   map[string]endpointInfo{"ns/a": cluster, "ns/b": local("w1", "cp2")},
			nodes: excludedW2,
			want:  map[netip.Addr][]string{svcA: {"cp1", "cp2", "cp3", "w1"}, svcA6: {"cp1", "cp2", "cp3", "w1"}, svcB: {"cp2", "w1"}},
		},
		{
			name:  "Local: an endpoint on an unhealthy or excluded node does not count",
			eps:   map[string]endpointInfo{"ns/b": local("w1", "w2", "cp3")},
			nodes: func() []assign.Node { n := healthyNodes(all, "cp1", "cp2", "w1", "w2"); n[4].Excluded = true; return n }(),
			want:  map[netip.Addr][]string{svcB: {"w1"}},
		},
		{
			name:  "Cluster without a usable endpoint and Local without a local one: nobody",
			eps:   map[string]endpointInfo{"ns/a": {}, "ns/b": local()},
			nodes: up,
			want:  map[netip.Addr][]string{},
		},
		{
			name:  "shared VIP: the nodes that serve both",
			eps:   map[string]endpointInfo{"ns/c": cluster, "ns/d": local("w2", "cp1")},
			nodes: up,
			want:  map[netip.Addr][]string{shared: {"cp1", "w2"}},
		},
		{
			name:  "shared VIP without a common node: the union",
			eps:   map[string]endpointInfo{"ns/c": local("w1"), "ns/d": local("w2")},
			nodes: up,
			want:  map[netip.Addr][]string{shared: {"w1", "w2"}},
		},
		{
			name:  "shared VIP, one Service without endpoints: the other's nodes",
			eps:   map[string]endpointInfo{"ns/c": local("w1", "cp2"), "ns/d": {}},
			nodes: up,
			want:  map[netip.Addr][]string{shared: {"cp2", "w1"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := advertiserSets(advertiserInput{Nodes: tc.nodes, State: svcState(), Endpoints: tc.eps, ServicesKnown: true})
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("advertiserSets = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAdvertisersWhileServicesUnknown(t *testing.T) {
	st := svcState()
	st.Advertisers[svcA.String()] = []string{"w1"}
	st.Advertisers[cpVIP4.String()] = []string{"cp1", "cp2"}
	st.Advertisers["198.51.100.199"] = []string{"w2"} // no allocation seen: kept too
	in := advertiserInput{ControlPlaneVIPs: []netip.Addr{cpVIP4}, Voters: []string{"cp1", "cp2", "cp3"},
		Nodes: healthyNodes([]string{"cp1", "cp2", "cp3", "w1"}, "cp1", "cp2", "cp3"), State: st, ServicesKnown: false}
	got := advertiserSets(in)
	want := map[netip.Addr][]string{
		cpVIP4:                                {"cp1", "cp2", "cp3"},
		svcA:                                  {"w1"},
		netip.MustParseAddr("198.51.100.199"): {"w2"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("caches not synced: advertiserSets = %v, want %v (service VIPs untouched, control plane decided)", got, want)
	}
	// Once synced, the stale entry goes and svcA gets every eligible node.
	in.ServicesKnown = true
	got = advertiserSets(in)
	if _, ok := got[netip.MustParseAddr("198.51.100.199")]; ok {
		t.Errorf("a VIP no Service holds kept advertisers: %v", got)
	}
	if !slices.Equal(got[svcA], []string{"cp1", "cp2", "cp3"}) {
		t.Errorf("svcA advertisers = %v", got[svcA])
	}
}

func TestControlPlaneVIPWinsOverAPoolAddress(t *testing.T) {
	st := svcState()
	st.Allocations["ns/x"] = raftstore.Allocation{Service: "ns/x", Pool: "web", IPs: []string{cpVIP4.String()}}
	got := advertiserSets(advertiserInput{ControlPlaneVIPs: []netip.Addr{cpVIP4}, Voters: []string{"cp1"},
		Nodes: healthyNodes([]string{"cp1", "w1"}, "cp1", "w1"), State: st, Endpoints: map[string]endpointInfo{"ns/x": {HasEndpoints: true}},
		ServicesKnown: true})
	if !slices.Equal(got[cpVIP4], []string{"cp1"}) {
		t.Fatalf("control-plane VIP advertisers = %v, want only the voter", got[cpVIP4])
	}
}

func TestAdvertiserSetsIgnoreInputOrder(t *testing.T) {
	st := svcState()
	eps := map[string]endpointInfo{"ns/a": {HasEndpoints: true}, "ns/c": {LocalTraffic: true, HasEndpoints: true, EndpointNodes: []string{"w2", "cp1", "w1"}}, "ns/d": {HasEndpoints: true}}
	nodes := healthyNodes([]string{"cp1", "cp2", "cp3", "w1", "w2"}, "cp1", "cp2", "cp3", "w1", "w2")
	base := advertiserSets(advertiserInput{ControlPlaneVIPs: []netip.Addr{cpVIP4}, Voters: []string{"cp1", "cp2", "cp3"},
		Nodes: nodes, State: st, Endpoints: eps, ServicesKnown: true})
	rev := slices.Clone(nodes)
	slices.Reverse(rev)
	eps["ns/c"] = endpointInfo{LocalTraffic: true, HasEndpoints: true, EndpointNodes: []string{"w1", "w1", "cp1", "w2"}}
	got := advertiserSets(advertiserInput{ControlPlaneVIPs: []netip.Addr{cpVIP4}, Voters: []string{"cp3", "cp2", "cp1", "cp2"},
		Nodes: rev, State: st, Endpoints: eps, ServicesKnown: true})
	if !reflect.DeepEqual(got, base) {
		t.Fatalf("reordered input changed the decision:\n%v\nwant\n%v", got, base)
	}
	for v, nodes := range got {
		if !slices.IsSorted(nodes) || len(slices.Compact(slices.Clone(nodes))) != len(nodes) {
			t.Errorf("%s: advertisers %v not sorted and unique", v, nodes)
		}
	}
}

func TestAdvertiserChanges(t *testing.T) {
	st := svcState()
	st.Advertisers[cpVIP4.String()] = []string{"cp1", "cp2", "cp3"}
	st.Advertisers[svcA.String()] = []string{"cp1", "w1"}
	st.Advertisers[svcB.String()] = []string{"w1"}
	st.Advertisers[shared.String()] = []string{"w2"}
	want := map[netip.Addr][]string{
		cpVIP4:                              {"cp1", "cp3"}, // cp2's API server died
		svcA:                                {"cp1", "w1"},  // unchanged
		svcA6:                               {"cp1", "w1"},  // new
		shared:                              {"w2"},         // unchanged
		cpVIP6:                              {"cp1", "cp2"}, // new, no Service
		svcB:                                nil,            // withdrawn
		netip.MustParseAddr("198.51.100.9"): nil,            // absent both sides: no change
	}
	got := advertiserChanges(st, want)
	exp := []advertiserChange{
		{VIP: cpVIP4, From: []string{"cp1", "cp2", "cp3"}, To: []string{"cp1", "cp3"}},
		{VIP: svcB, Services: []string{"ns/b"}, From: []string{"w1"}},
		{VIP: cpVIP6, To: []string{"cp1", "cp2"}},
		{VIP: svcA6, Services: []string{"ns/a"}, To: []string{"cp1", "w1"}},
	}
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("advertiserChanges =\n%+v\nwant\n%+v", got, exp)
	}
	b := advertiserCommands(got)
	wantBatch := raftstore.Batch{Commands: []raftstore.Command{
		raftstore.SetAdvertisers{VIP: cpVIP4.String(), Nodes: []string{"cp1", "cp3"}},
		raftstore.SetAdvertisers{VIP: svcB.String()},
		raftstore.SetAdvertisers{VIP: cpVIP6.String(), Nodes: []string{"cp1", "cp2"}},
		raftstore.SetAdvertisers{VIP: svcA6.String(), Nodes: []string{"cp1", "w1"}},
	}}
	if !reflect.DeepEqual(b, wantBatch) {
		t.Fatalf("advertiserCommands = %+v, want %+v", b, wantBatch)
	}
	if _, err := raftstore.Encode(b); err != nil {
		t.Fatalf("the batch does not encode: %v", err)
	}
	if c := advertiserChanges(st, advertiserSetsOf(st)); len(c) != 0 {
		t.Fatalf("committed sets compared with themselves gave changes: %+v", c)
	}
}

// advertiserSetsOf reads the committed sets back as a decision.
func advertiserSetsOf(st raftstore.State) map[netip.Addr][]string {
	out := map[netip.Addr][]string{}
	for k, v := range st.Advertisers {
		out[netip.MustParseAddr(k)] = v
	}
	return out
}

// TestAdvertiserDecisionConverges applies the decision's commands to a state the way
// the FSM does and checks a second decision changes nothing: the leader must not
// commit the same sets on every tick.
func TestAdvertiserDecisionConverges(t *testing.T) {
	st := svcState()
	st.APIServerEverHealthy = true
	st.Nodes["cp1"] = raftstore.NodeInfo{Name: "cp1", Role: raftstore.RoleVoter, APIServerHealthy: true}
	in := advertiserInput{ControlPlaneVIPs: []netip.Addr{cpVIP4, cpVIP6}, Voters: []string{"cp1", "cp2", "cp3"},
		Nodes: healthyNodes([]string{"cp1", "cp2", "cp3", "w1", "w2"}, "cp1", "cp2", "w1", "w2"), State: st,
		Endpoints:     map[string]endpointInfo{"ns/a": {HasEndpoints: true}, "ns/c": {LocalTraffic: true, HasEndpoints: true, EndpointNodes: []string{"w2"}}},
		ServicesKnown: true}
	first := advertiserChanges(st, advertiserSets(in))
	if len(first) == 0 {
		t.Fatal("an empty committed state needs changes")
	}
	for _, c := range first {
		if len(c.To) == 0 {
			delete(st.Advertisers, c.VIP.String())
		} else {
			st.Advertisers[c.VIP.String()] = c.To
		}
	}
	in.State = st
	if again := advertiserChanges(st, advertiserSets(in)); len(again) != 0 {
		t.Fatalf("second decision changed %+v", again)
	}
	if got := st.Advertisers[cpVIP4.String()]; !slices.Equal(got, []string{"cp1"}) {
		t.Errorf("control-plane VIP advertisers %v, want only cp1 (the healthy API server)", got)
	}
}

func TestBGPWant(t *testing.T) {
	webAttrs := bgp.PathAttrs{Communities: []string{"65000:100"}, LocalPref: 200}
	dual := bgpSettings{NextHop4: netip.MustParseAddr("198.51.100.11"), NextHop6: netip.MustParseAddr("2001:db8:100::11"),
		PoolAttrs: map[string]bgp.PathAttrs{"web": webAttrs}}
	v4only := dual
	v4only.NextHop6 = netip.Addr{}
	st := svcState()
	st.Advertisers[cpVIP4.String()] = []string{"cp1", "cp2"}
	st.Advertisers[cpVIP6.String()] = []string{"cp1", "cp2"}
	st.Advertisers[svcA.String()] = []string{"cp1", "w1"}
	st.Advertisers[svcA6.String()] = []string{"cp1", "w1"}
	st.Advertisers[svcB.String()] = []string{"cp2"}
	cases := []struct {
		name       string
		self       string
		fenced     bool
		s          bgpSettings
		want       map[netip.Addr]bgp.PathAttrs
		unroutable []netip.Addr
	}{
		{"voter in both", "cp1", false, dual, map[netip.Addr]bgp.PathAttrs{cpVIP4: {}, cpVIP6: {}, svcA: webAttrs, svcA6: webAttrs}, nil},
		{"pool without attributes", "cp2", false, dual, map[netip.Addr]bgp.PathAttrs{cpVIP4: {}, cpVIP6: {}, svcB: {}}, nil},
		{"worker", "w1", false, dual, map[netip.Addr]bgp.PathAttrs{svcA: webAttrs, svcA6: webAttrs}, nil},
		{"not named anywhere", "cp3", false, dual, map[netip.Addr]bgp.PathAttrs{}, nil},
		{"fenced: nothing", "cp1", true, dual, map[netip.Addr]bgp.PathAttrs{}, nil},
		{"no IPv6 next hop", "cp1", false, v4only, map[netip.Addr]bgp.PathAttrs{cpVIP4: {}, svcA: webAttrs}, []netip.Addr{cpVIP6, svcA6}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, unroutable := bgpWant(tc.self, tc.fenced, st, tc.s)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("want = %v, expected %v", got, tc.want)
			}
			if !slices.Equal(unroutable, tc.unroutable) {
				t.Errorf("unroutable = %v, expected %v", unroutable, tc.unroutable)
			}
		})
	}
}

func TestSameRoutes(t *testing.T) {
	a := map[netip.Addr]bgp.PathAttrs{svcA: {Communities: []string{"65000:1"}}, svcB: {}}
	if !sameRoutes(a, maps.Clone(a)) {
		t.Error("a set differs from its copy")
	}
	for name, b := range map[string]map[netip.Addr]bgp.PathAttrs{
		"community":  {svcA: {Communities: []string{"65000:2"}}, svcB: {}},
		"local-pref": {svcA: {Communities: []string{"65000:1"}}, svcB: {LocalPref: 5}},
		"VIP gone":   {svcA: {Communities: []string{"65000:1"}}},
		"VIP added":  {svcA: {Communities: []string{"65000:1"}}, svcB: {}, shared: {}},
	} {
		if sameRoutes(a, b) {
			t.Errorf("%s: sets compare equal", name)
		}
	}
}

func TestSharedAdvertisers(t *testing.T) {
	cases := []struct {
		sets [][]string
		want []string
	}{
		{nil, nil},
		{[][]string{nil, {}}, nil},
		{[][]string{{"b", "a"}}, []string{"a", "b"}},
		{[][]string{{"a", "b", "c"}, {"c", "b"}, {"b", "d", "c"}}, []string{"b", "c"}},
		{[][]string{{"a"}, {"b"}}, []string{"a", "b"}},
		{[][]string{{"a", "b"}, nil, {"b"}}, []string{"b"}},
	}
	for _, tc := range cases {
		if got := sharedAdvertisers(tc.sets); !slices.Equal(got, tc.want) {
			t.Errorf("sharedAdvertisers(%v) = %v, want %v", tc.sets, got, tc.want)
		}
	}
}

func TestARPExposed(t *testing.T) {
	root := t.TempDir()
	set := func(dev, v string) {
		dir := filepath.Join(root, "sys/net/ipv4/conf", dev)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "arp_ignore"), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := arpExposed(root, ""); err == nil {
		t.Fatal("missing sysctl files gave no error")
	}
	set("all", "0")
	set("eth0", "0")
	set("eth1", "2")
	for _, tc := range []struct {
		all, iface string
		want       bool
	}{
		{"0", "", true},
		{"0", "eth0", true},
		{"0", "eth1", false}, // the interface's own setting wins when larger
		{"0", "missing", true},
		{"1", "eth0", false},
	} {
		set("all", tc.all)
		got, err := arpExposed(root, tc.iface)
		if err != nil || got != tc.want {
			t.Errorf("all=%s iface=%q: exposed %v (err %v), want %v", tc.all, tc.iface, got, err, tc.want)
		}
	}
}
