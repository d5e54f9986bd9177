package daemon

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/raftvip/raftvip/daemon/assign"
	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/vip"
)

func TestAnnounceLinks(t *testing.T) {
	cases := []struct {
		name  string
		def   string
		flags []string
		want  []string
	}{
		{"interface only", "eth0", []string{"a=198.51.100.100-198.51.100.110"}, []string{"eth0"}},
		{"pool interfaces after it, sorted, once", "eth0", []string{
			"a=198.51.100.100-198.51.100.110;interface=vlan30",
			"b=198.51.100.120-198.51.100.130;interface=eth1",
			"c=198.51.100.140-198.51.100.150;interface=vlan30",
		}, []string{"eth0", "eth1", "vlan30"}},
		{"a pool on --interface adds nothing", "eth0", []string{"a=198.51.100.100-198.51.100.110;interface=eth0"}, []string{"eth0"}},
		{"no --interface: the pools' interfaces", "", []string{"a=198.51.100.100-198.51.100.110;interface=eth1"}, []string{"eth1"}},
		{"nothing", "", nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := announceLinks(c.def, mustPools(t, c.flags...)); !slices.Equal(got, c.want) {
				t.Fatalf("announceLinks = %v, want %v", got, c.want)
			}
		})
	}
}

func TestFenceTable(t *testing.T) {
	if got := fenceTable("eth0", "eth0"); got != vip.FenceTable {
		t.Errorf("the --interface's table is %q, want %q as before several interfaces", got, vip.FenceTable)
	}
	if got := fenceTable("eth1", "eth0"); got != vip.FenceTable+"-eth1" {
		t.Errorf("a pool interface's table is %q", got)
	}
}

func TestNodeLinks(t *testing.T) {
	cases := []struct {
		name     string
		info     raftstore.NodeInfo
		reported bool
		want     map[string]bool
	}{
		{"never reported: benefit of the doubt", raftstore.NodeInfo{}, false, nil},
		{"old report, interface up", raftstore.NodeInfo{InterfaceUp: true}, true, map[string]bool{assign.DefaultLink: true}},
		{"old report, interface down", raftstore.NodeInfo{}, true, map[string]bool{assign.DefaultLink: false}},
		{"interfaces with the default", raftstore.NodeInfo{InterfaceUp: true, Interfaces: []raftstore.LinkState{
			{Name: "eth0", Up: true, Default: true}, {Name: "vlan30", Up: false},
		}}, true, map[string]bool{assign.DefaultLink: true, "eth0": true, "vlan30": false}},
		{"interfaces without --interface: the default is down", raftstore.NodeInfo{Interfaces: []raftstore.LinkState{
			{Name: "eth1", Up: true},
		}}, true, map[string]bool{assign.DefaultLink: false, "eth1": true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := nodeLinks(c.info, c.reported); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("nodeLinks = %v, want %v", got, c.want)
			}
		})
	}
}

// TestWithLinkStateMovesOnlyThePoolOfTheDownLink: the leader's inputs built from
// the reports and the pools move the VIP of the pool whose interface went down
// on its owner, and only that one; a node that has not reported keeps the
// benefit of the doubt.
func TestWithLinkStateMovesOnlyThePoolOfTheDownLink(t *testing.T) {
	st := raftstore.State{
		Pools: map[string]raftstore.Pool{"main": {Name: "main"}, "vlan": {Name: "vlan", Interface: "vlan30"}},
		Allocations: map[string]raftstore.Allocation{
			"ns/main": {Service: "ns/main", Pool: "main", IPs: []string{"198.51.100.120"}},
			"ns/vlan": {Service: "ns/vlan", Pool: "vlan", IPs: []string{"198.51.100.200"}},
		},
		Owners: map[string]raftstore.Owner{
			"198.51.100.120": {VIP: "198.51.100.120", Node: "a", Epoch: 1, Service: "ns/main"},
			"198.51.100.200": {VIP: "198.51.100.200", Node: "a", Epoch: 1, Service: "ns/vlan"},
		},
		Nodes: map[string]raftstore.NodeInfo{
			"a": {Name: "a", InterfaceUp: true, Interfaces: []raftstore.LinkState{{Name: "eth0", Up: true, Default: true}, {Name: "vlan30"}}},
			"b": {Name: "b", InterfaceUp: true},
		},
	}
	nodes := withLinkState([]assign.Node{{Name: "a", Healthy: true}, {Name: "b", Healthy: true}, {Name: "c", Healthy: true}}, st)
	if nodes[2].Links != nil {
		t.Fatalf("a node that never reported got links %v", nodes[2].Links)
	}
	svcs, cur := assignInputs(st, nil)
	ds := assign.Assign(svcs, nodes, cur)
	// b reports no vlan30 (an old node): only c, silent so far, may take it.
	if len(ds) != 1 || ds[0].VIP != netip.MustParseAddr("198.51.100.200") || ds[0].From != "a" || ds[0].To != "c" ||
		ds[0].Reason != assign.ReasonLinkDown {
		t.Fatalf("decisions %+v, want only the vlan VIP moved a->c for its link", ds)
	}
}

func TestVIPLinks(t *testing.T) {
	st := raftstore.State{
		Pools: map[string]raftstore.Pool{"main": {Name: "main"}, "vlan": {Name: "vlan", Interface: "vlan30"}},
		Allocations: map[string]raftstore.Allocation{
			"ns/main": {Service: "ns/main", Pool: "main"},
			"ns/vlan": {Service: "ns/vlan", Pool: "vlan"},
			"ns/lost": {Service: "ns/lost", Pool: "gone"},
		},
		Owners: map[string]raftstore.Owner{
			"198.51.100.120": {Node: "a", Service: "ns/main"},
			"198.51.100.200": {Node: "a", Service: "ns/vlan"},
			"198.51.100.201": {Node: "a", Service: "ns/vlan"},
			"198.51.100.210": {Node: "a", Service: "ns/lost"},
		},
	}
	a := netip.MustParseAddr
	want := []netip.Addr{a("198.51.100.10"), a("198.51.100.120"), a("198.51.100.200"), a("198.51.100.201"), a("198.51.100.210")}
	got := vipLinks(want, st, "eth0")
	exp := map[string][]netip.Addr{
		// The control-plane VIP (no owner), a pool without interface, a pool the
		// state no longer has.
		"eth0":   {a("198.51.100.10"), a("198.51.100.120"), a("198.51.100.210")},
		"vlan30": {a("198.51.100.200"), a("198.51.100.201")},
	}
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("vipLinks = %v, want %v", got, exp)
	}
}

func TestLocalLinks(t *testing.T) {
	up := map[string]bool{"eth0": true}
	got := localLinks([]string{"eth0", "vlan30"}, "eth0", func(n string) bool { return up[n] })
	want := []raftstore.LinkState{{Name: "eth0", Up: true, Default: true}, {Name: "vlan30"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("localLinks = %+v, want %+v", got, want)
	}
}
