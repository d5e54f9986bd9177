package assign

import (
	"slices"
	"testing"
)

// onPool is a Cluster Service with an endpoint whose pool puts its VIPs on iface.
func onPool(key, iface string, addrs ...string) Service {
	s := cluster(key, addrs...)
	s.Interface = iface
	return s
}

func links(pairs ...any) map[string]bool {
	m := map[string]bool{}
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i].(string)] = pairs[i+1].(bool)
	}
	return m
}

func TestNodeLinkUp(t *testing.T) {
	cases := []struct {
		name  string
		links map[string]bool
		iface string
		want  bool
	}{
		{"no report: benefit of the doubt for --interface", nil, DefaultLink, true},
		{"no report: benefit of the doubt for a pool interface", nil, "eth1", true},
		{"default up", links(DefaultLink, true), DefaultLink, true},
		{"default down", links(DefaultLink, false), DefaultLink, false},
		{"pool interface up", links(DefaultLink, false, "eth1", true), "eth1", true},
		{"pool interface down", links(DefaultLink, true, "eth1", false), "eth1", false},
		{"pool interface not reported: the node lacks it", links(DefaultLink, true), "eth1", false},
		{"empty report: nothing is up", map[string]bool{}, DefaultLink, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := (Node{Name: "n", Healthy: true, Links: c.links}).LinkUp(c.iface); got != c.want {
				t.Fatalf("LinkUp(%q) with %v = %v, want %v", c.iface, c.links, got, c.want)
			}
		})
	}
}

func TestEligibleByInterface(t *testing.T) {
	nodes := []Node{
		{Name: "both", Healthy: true, Links: links(DefaultLink, true, "eth1", true)},
		{Name: "eth1-down", Healthy: true, Links: links(DefaultLink, true, "eth1", false)},
		{Name: "no-eth1", Healthy: true, Links: links(DefaultLink, true)},
		{Name: "default-down", Healthy: true, Links: links(DefaultLink, false, "eth1", true)},
		{Name: "silent", Healthy: true},
		{Name: "down", Healthy: false, Links: links(DefaultLink, true, "eth1", true)},
	}
	cases := []struct {
		name string
		svc  Service
		want []string
	}{
		{"cluster on --interface", onPool("ns/a", DefaultLink), []string{"both", "eth1-down", "no-eth1", "silent"}},
		{"cluster on eth1", onPool("ns/a", "eth1"), []string{"both", "default-down", "silent"}},
		{"cluster on an interface nobody reported", onPool("ns/a", "eth9"), []string{"silent"}},
		{"local on eth1", func() Service {
			s := local("ns/l", []string{"eth1-down", "default-down", "down", "silent"})
			s.Interface = "eth1"
			return s
		}(), []string{"default-down", "silent"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Eligible(c.svc, nodes); !slices.Equal(got, c.want) {
				t.Fatalf("Eligible = %v, want %v", got, c.want)
			}
		})
	}
}

// TestAssignLinkDownMovesOnlyThatPool: the owner of VIPs of two pools loses the
// link of one pool's interface; only that pool's VIPs move, with a reason that
// says why, and the other pool's VIPs stay (sticky).
func TestAssignLinkDownMovesOnlyThatPool(t *testing.T) {
	svcs := []Service{
		onPool("ns/main", DefaultLink, "10.0.0.1"),
		onPool("ns/vlan", "eth1", "10.0.1.1"),
	}
	cur := owners("10.0.0.1", "a", "10.0.1.1", "a")
	cases := []struct {
		name  string
		nodes []Node
		want  string
	}{
		{"all up: nothing moves", []Node{
			{Name: "a", Healthy: true, Links: links(DefaultLink, true, "eth1", true)},
			{Name: "b", Healthy: true, Links: links(DefaultLink, true, "eth1", true)},
		}, ""},
		{"eth1 down on a: the vlan VIP moves", []Node{
			{Name: "a", Healthy: true, Links: links(DefaultLink, true, "eth1", false)},
			{Name: "b", Healthy: true, Links: links(DefaultLink, true, "eth1", true)},
		}, "10.0.1.1 ns/vlan a->b (owner's interface of the pool is down)\n"},
		{"--interface down on a: the main VIP moves", []Node{
			{Name: "a", Healthy: true, Links: links(DefaultLink, false, "eth1", true)},
			{Name: "b", Healthy: true, Links: links(DefaultLink, true, "eth1", true)},
		}, "10.0.0.1 ns/main a->b (owner's interface of the pool is down)\n"},
		{"eth1 down everywhere: the vlan VIP is withdrawn", []Node{
			{Name: "a", Healthy: true, Links: links(DefaultLink, true, "eth1", false)},
			{Name: "b", Healthy: true, Links: links(DefaultLink, true)},
		}, "10.0.1.1 ns/vlan a->- (no eligible node)\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ds := Assign(svcs, c.nodes, cur)
			if got := format(ds); got != c.want {
				t.Fatalf("decisions:\n%s\nwant:\n%s", got, c.want)
			}
			checkSettled(t, svcs, c.nodes, cur, ds)
		})
	}
}
