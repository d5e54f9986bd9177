package daemon

import (
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/raftvip/raftvip/raftstore"
)

func TestEntitledNow(t *testing.T) {
	cp := netip.MustParseAddr("198.51.100.10")
	svc := netip.MustParseAddr("198.51.100.100")
	cps := []netip.Addr{cp}
	mine := raftstore.Owner{VIP: svc.String(), Node: "n1", Epoch: 3}
	theirs := raftstore.Owner{VIP: svc.String(), Node: "n2", Epoch: 4}
	for _, tc := range []struct {
		name  string
		v     netip.Addr
		owner raftstore.Owner
		owned bool
		p     passState
		want  bool
	}{
		{"leader within its lease speaks for the control plane", cp, raftstore.Owner{}, false, passState{leader: true}, true},
		{"leader past its lease is silent", cp, raftstore.Owner{}, false, passState{}, false},
		{"follower never speaks for the control plane", cp, raftstore.Owner{}, false, passState{fenced: false}, false},
		{"owner in contact", svc, mine, true, passState{}, true},
		{"owner fenced", svc, mine, true, passState{fenced: true}, false},
		{"moved to another node since the first burst", svc, theirs, true, passState{}, false},
		{"owner removed since the first burst", svc, raftstore.Owner{}, false, passState{}, false},
		{"leader owning a service VIP", svc, mine, true, passState{leader: true}, true},
		{"owner asked to release since the first burst", svc, raftstore.Owner{VIP: svc.String(), Node: "n1", Epoch: 3, Releasing: true}, true, passState{}, false},
		{"owner that confirmed its release", svc, raftstore.Owner{VIP: svc.String(), Node: "n1", Epoch: 3, Releasing: true, Released: true}, true, passState{}, false},
		{"leader asked to release a service VIP", svc, raftstore.Owner{VIP: svc.String(), Node: "n1", Epoch: 3, Releasing: true}, true, passState{leader: true}, false},
	} {
		if got := entitledNow("n1", tc.v, cps, tc.owner, tc.owned, tc.p); got != tc.want {
			t.Errorf("%s: entitled = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestBGPStillEntitled(t *testing.T) {
	a, b, c := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("2001:db8:100::3")
	want := map[netip.Addr]int{a: 1, b: 2, c: 3}
	for _, tc := range []struct {
		name   string
		fenced bool
		still  []netip.Addr
		want   []netip.Addr
	}{
		{"all still ours", false, []netip.Addr{a, b, c}, []netip.Addr{a, b, c}},
		{"one moved away since the copy", false, []netip.Addr{a, c}, []netip.Addr{a, c}},
		{"fenced since the pass began", true, []netip.Addr{a, b, c}, nil},
		{"none left", false, nil, nil},
	} {
		got := bgpStillEntitled(want, tc.fenced, func(v netip.Addr) bool { return slices.Contains(tc.still, v) })
		if keys := slices.SortedFunc(maps.Keys(got), netip.Addr.Compare); !slices.Equal(keys, tc.want) {
			t.Errorf("%s: kept %v, want %v", tc.name, keys, tc.want)
		}
		for k, v := range got {
			if v != want[k] {
				t.Errorf("%s: %s lost its attributes", tc.name, k)
			}
		}
	}
}
