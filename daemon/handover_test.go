package daemon

import (
	"net/netip"
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

func TestHandoverTarget(t *testing.T) {
	voters := []string{"cp3", "cp1", "cp2"}
	nodes := func(healthy map[string]bool) map[string]raftstore.NodeInfo {
		m := map[string]raftstore.NodeInfo{}
		for n, h := range healthy {
			m[n] = raftstore.NodeInfo{Name: n, Role: "voter", APIServerHealthy: h, InterfaceUp: true}
		}
		return m
	}
	cases := []struct {
		name   string
		self   string
		st     raftstore.State
		want   string
		wantOK bool
	}{
		{"bootstrap: no API server ever healthy, keep", "cp1",
			raftstore.State{Nodes: nodes(map[string]bool{"cp1": false, "cp2": false})}, "", false},
		{"self healthy keeps", "cp1",
			raftstore.State{APIServerEverHealthy: true, Nodes: nodes(map[string]bool{"cp1": true, "cp2": true})}, "", false},
		{"self down, cp2 healthy", "cp1",
			raftstore.State{APIServerEverHealthy: true, Nodes: nodes(map[string]bool{"cp1": false, "cp2": true, "cp3": true})}, "cp2", true},
		{"self down, only cp3 healthy", "cp1",
			raftstore.State{APIServerEverHealthy: true, Nodes: nodes(map[string]bool{"cp1": false, "cp2": false, "cp3": true})}, "cp3", true},
		{"self unreported counts as down", "cp2",
			raftstore.State{APIServerEverHealthy: true, Nodes: nodes(map[string]bool{"cp3": true})}, "cp3", true},
		{"all down: keep", "cp1",
			raftstore.State{APIServerEverHealthy: true, Nodes: nodes(map[string]bool{"cp1": false, "cp2": false, "cp3": false})}, "", false},
		{"healthy non-voter is not a target", "cp1",
			raftstore.State{APIServerEverHealthy: true, Nodes: nodes(map[string]bool{"cp1": false, "w1": true})}, "", false},
		{"draining voter is not a target", "cp1",
			raftstore.State{APIServerEverHealthy: true, Nodes: map[string]raftstore.NodeInfo{
				"cp1": {Name: "cp1", InterfaceUp: true}, "cp2": {Name: "cp2", APIServerHealthy: true, Draining: true, InterfaceUp: true}, "cp3": {Name: "cp3", APIServerHealthy: true, InterfaceUp: true}}}, "cp3", true},
		{"self down, the healthy voter's link is down: the next one", "cp1",
			raftstore.State{APIServerEverHealthy: true, Nodes: map[string]raftstore.NodeInfo{
				"cp1": {Name: "cp1", InterfaceUp: true}, "cp2": {Name: "cp2", APIServerHealthy: true}, "cp3": {Name: "cp3", APIServerHealthy: true, InterfaceUp: true}}}, "cp3", true},
		{"self's link down, healthy API server: hand over", "cp1",
			raftstore.State{APIServerEverHealthy: true, Nodes: map[string]raftstore.NodeInfo{
				"cp1": {Name: "cp1", APIServerHealthy: true}, "cp2": {Name: "cp2", APIServerHealthy: true, InterfaceUp: true}}}, "cp2", true},
		{"self's link down at bootstrap (no API server yet): any voter with a link", "cp1",
			raftstore.State{Nodes: map[string]raftstore.NodeInfo{
				"cp1": {Name: "cp1"}, "cp2": {Name: "cp2", InterfaceUp: true}}}, "cp2", true},
		{"self's link down, every other link down too: keep", "cp1",
			raftstore.State{APIServerEverHealthy: true, Nodes: map[string]raftstore.NodeInfo{
				"cp1": {Name: "cp1", APIServerHealthy: true}, "cp2": {Name: "cp2", APIServerHealthy: true}, "cp3": {Name: "cp3", APIServerHealthy: true}}}, "", false},
		{"self's link down, the voters with a link have no API server: keep", "cp1",
			raftstore.State{APIServerEverHealthy: true, Nodes: map[string]raftstore.NodeInfo{
				"cp1": {Name: "cp1", APIServerHealthy: true}, "cp2": {Name: "cp2", InterfaceUp: true}}}, "", false},
		{"self not reported yet: its link is unknown, keep", "cp1",
			raftstore.State{Nodes: map[string]raftstore.NodeInfo{"cp2": {Name: "cp2", InterfaceUp: true}}}, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, why, ok := handoverTarget(tc.self, tc.st, voters, true)
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("handoverTarget(%s) = %q,%v; want %q,%v", tc.self, got, ok, tc.want, tc.wantOK)
			}
			me, reported := tc.st.Nodes[tc.self]
			linkDown := reported && !me.InterfaceUp
			if ok && why != handoverLinkDown && why != handoverAPIDown {
				t.Fatalf("unknown reason %q", why)
			} else if ok && (why == handoverLinkDown) != linkDown {
				t.Fatalf("reason %q with self's link down %v", why, linkDown)
			}
		})
	}
}

// TestHandoverTargetWithoutControlPlaneVIPs: a leader with no control-plane VIP
// has nothing to move when its link goes down; only its API server counts.
func TestHandoverTargetWithoutControlPlaneVIPs(t *testing.T) {
	st := raftstore.State{APIServerEverHealthy: true, Nodes: map[string]raftstore.NodeInfo{
		"cp1": {Name: "cp1", APIServerHealthy: true}, "cp2": {Name: "cp2", APIServerHealthy: true, InterfaceUp: true}}}
	if got, why, ok := handoverTarget("cp1", st, []string{"cp1", "cp2"}, false); ok {
		t.Fatalf("handed over to %s (%s) for a link that carries no control-plane VIP", got, why)
	}
	st.Nodes["cp1"] = raftstore.NodeInfo{Name: "cp1"}
	if got, why, ok := handoverTarget("cp1", st, []string{"cp1", "cp2"}, false); !ok || got != "cp2" || why != handoverAPIDown {
		t.Fatalf("API server down: %q %q %v, want cp2 for the API server", got, why, ok)
	}
}

func TestLeaseYield(t *testing.T) {
	l := newLeaderLease()
	speaking := passState{leader: true, cpTTL: 50 * time.Millisecond, svcTTL: 300 * time.Millisecond}
	if got := l.apply(speaking); got != speaking {
		t.Fatalf("a lease that did not yield changed the pass: %+v", got)
	}
	l.yield()
	got := l.apply(speaking)
	if got.leader || got.cpTTL != 0 || got.fenced || got.svcTTL != speaking.svcTTL {
		t.Fatalf("yielded pass %+v: want no control-plane VIPs, the service VIPs untouched", got)
	}
	select {
	case <-l.renewed:
	default:
		t.Fatal("yield did not wake the announce loop")
	}
	want := desiredVIPs("n1", got.leader, got.fenced, []netip.Addr{netip.MustParseAddr("198.51.100.10")},
		raftstore.State{Owners: map[string]raftstore.Owner{"198.51.100.100": {Node: "n1"}}})
	if len(want) != 1 || want[0].String() != "198.51.100.100" {
		t.Fatalf("a yielded leader holds %v, want only its service VIP", want)
	}
	if entitledNow("n1", netip.MustParseAddr("198.51.100.10"), []netip.Addr{netip.MustParseAddr("198.51.100.10")}, raftstore.Owner{}, false, got) {
		t.Fatal("a yielded leader may still send follow-ups for the control-plane VIP")
	}
	l.resume()
	if got := l.apply(speaking); got != speaking {
		t.Fatalf("resumed lease still yields: %+v", got)
	}
	var none *leaderLease
	none.yield()
	none.resume()
}

func TestHoldsAny(t *testing.T) {
	a, b, c := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("2001:db8:100::1")
	for _, tc := range []struct {
		held, vips []netip.Addr
		want       bool
	}{
		{nil, []netip.Addr{a}, false},
		{[]netip.Addr{b}, []netip.Addr{a, c}, false},
		{[]netip.Addr{b, c}, []netip.Addr{a, c}, true},
		{[]netip.Addr{a}, nil, false},
	} {
		if got := holdsAny(tc.held, tc.vips); got != tc.want {
			t.Errorf("holdsAny(%v, %v) = %v, want %v", tc.held, tc.vips, got, tc.want)
		}
	}
}
