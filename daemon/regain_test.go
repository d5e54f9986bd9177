package daemon

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/raftvip/raftvip/raftstore"
)

func TestRegained(t *testing.T) {
	a, b, c, cp := netip.MustParseAddr("198.51.100.120"), netip.MustParseAddr("198.51.100.121"),
		netip.MustParseAddr("2001:db8:100::120"), netip.MustParseAddr("198.51.100.10")
	st := func(epochs map[netip.Addr]uint64, other ...netip.Addr) raftstore.State {
		s := raftstore.NewState()
		for v, e := range epochs {
			s.Owners[v.String()] = raftstore.Owner{VIP: v.String(), Node: "cp1", Epoch: e}
		}
		for _, v := range other {
			s.Owners[v.String()] = raftstore.Owner{VIP: v.String(), Node: "cp2", Epoch: 9}
		}
		return s
	}
	first := ownedEpochs("cp1", []netip.Addr{cp, a, b, c}, st(map[netip.Addr]uint64{a: 1, b: 3}, c))
	if want := map[netip.Addr]uint64{a: 1, b: 3}; len(first) != len(want) || first[a] != 1 || first[b] != 3 {
		t.Fatalf("ownedEpochs = %v, want %v (the control-plane VIP and cp2's VIP left out)", first, want)
	}
	cases := []struct {
		name string
		now  map[netip.Addr]uint64
		want []netip.Addr
	}{
		{"nothing moved", map[netip.Addr]uint64{a: 1, b: 3}, nil},
		{"one went away and came back", map[netip.Addr]uint64{a: 3, b: 3}, []netip.Addr{a}},
		{"both", map[netip.Addr]uint64{a: 3, b: 5}, []netip.Addr{a, b}},
		{"a new VIP is Set's to announce", map[netip.Addr]uint64{a: 1, b: 3, c: 10}, nil},
		{"a VIP no longer held", map[netip.Addr]uint64{b: 3}, nil},
	}
	for _, tc := range cases {
		if got := regained(first, tc.now); !slices.Equal(got, tc.want) {
			t.Errorf("%s: regained = %v, want %v", tc.name, got, tc.want)
		}
	}
}
