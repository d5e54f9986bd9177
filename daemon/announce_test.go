package daemon

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

func TestDesiredVIPs(t *testing.T) {
	cp := []netip.Addr{netip.MustParseAddr("198.51.100.100"), netip.MustParseAddr("2001:db8:100::100")}
	st := raftstore.State{Owners: map[string]raftstore.Owner{
		"198.51.100.120":    {VIP: "198.51.100.120", Node: "n1", Epoch: 3},
		"2001:db8:100::120": {VIP: "2001:db8:100::120", Node: "n1", Epoch: 1},
		"198.51.100.121":    {VIP: "198.51.100.121", Node: "n2", Epoch: 1},
		"198.51.100.122":    {VIP: "198.51.100.122", Node: "n3", Epoch: 2, Releasing: true},
		"198.51.100.123":    {VIP: "198.51.100.123", Node: "n3", Epoch: 5, Releasing: true, Released: true},
		"198.51.100.124":    {VIP: "198.51.100.124", Node: "n3", Epoch: 1},
	}}
	cases := []struct {
		name           string
		self           string
		leader, fenced bool
		want           []string
	}{
		{"follower in contact holds its own service VIPs", "n1", false, false, []string{"198.51.100.120", "2001:db8:100::120"}},
		{"fenced follower holds nothing", "n1", false, true, nil},
		{"leader holds control-plane VIPs and its own", "n2", true, false, []string{"198.51.100.100", "198.51.100.121", "2001:db8:100::100"}},
		{"a leader not yet caught up holds only the control-plane VIPs", "n2", true, true, []string{"198.51.100.100", "2001:db8:100::100"}},
		{"node owning nothing", "n4", false, false, nil},
		{"an owner asked to release holds only what it keeps", "n3", false, false, []string{"198.51.100.124"}},
		{"a releasing leader keeps only the control-plane VIPs and what it keeps", "n3", true, false, []string{"198.51.100.100", "198.51.100.124", "2001:db8:100::100"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := desiredVIPs(tc.self, tc.leader, tc.fenced, cp, st)
			var gs []string
			for _, a := range got {
				gs = append(gs, a.String())
			}
			if !slices.Equal(gs, tc.want) {
				t.Fatalf("desiredVIPs = %v, want %v", gs, tc.want)
			}
		})
	}
}

func TestFenced(t *testing.T) {
	now := time.Now()
	fence := 300 * time.Millisecond
	cases := []struct {
		name string
		last time.Time
		want bool
	}{
		{"never heard from a leader", time.Time{}, true},
		{"heard just now", now, false},
		{"heard within the fence", now.Add(-299 * time.Millisecond), false},
		{"silent longer than the fence", now.Add(-301 * time.Millisecond), true},
	}
	for _, tc := range cases {
		if got := fenced(tc.last, fence, now); got != tc.want {
			t.Errorf("%s: fenced = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestUnlessHalted(t *testing.T) {
	vips := []netip.Addr{netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.100")}
	halt := &raftstore.Halt{Index: 9, Type: "unknown(14)"}
	for name, tc := range map[string]struct {
		want []netip.Addr
		halt *raftstore.Halt
		got  []netip.Addr
	}{
		"running keeps its VIPs":     {vips, nil, vips},
		"halted holds nothing":       {vips, halt, nil},
		"halted with nothing to own": {nil, halt, nil},
	} {
		t.Run(name, func(t *testing.T) {
			if got := unlessHalted(tc.want, tc.halt); !slices.Equal(got, tc.got) {
				t.Fatalf("got %v, want %v", got, tc.got)
			}
		})
	}
}
