package bgp

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/osrg/gobgp/v3/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/prometheus/client_golang/prometheus"
)

func TestRouteNormalization(t *testing.T) {
	a, err := newRoute(PathAttrs{Communities: []string{"no-export", "65000:1", "65000:1"}, LocalPref: 10})
	if err != nil {
		t.Fatal(err)
	}
	b, err := newRoute(PathAttrs{Communities: []string{"65000:1", "65535:65281"}, LocalPref: 10})
	if err != nil {
		t.Fatal(err)
	}
	if !a.equal(b) {
		t.Errorf("%+v and %+v differ, want equal (same communities in another order and spelling)", a, b)
	}
	if !slices.Equal(a.communities, []uint32{65000<<16 | 1, 0xffffff01}) {
		t.Errorf("communities %x, want sorted and unique", a.communities)
	}
	for _, other := range []PathAttrs{
		{Communities: []string{"65000:1", "no-export"}, LocalPref: 11},
		{Communities: []string{"65000:1"}, LocalPref: 10},
		{Communities: []string{"65000:1", "no-export", "no-advertise"}, LocalPref: 10},
	} {
		c, err := newRoute(other)
		if err != nil {
			t.Fatal(err)
		}
		if a.equal(c) {
			t.Errorf("%+v equals %+v", a, c)
		}
	}
}

func TestBuildPath(t *testing.T) {
	r := route{communities: []uint32{65000<<16 | 100}, localPref: 300}
	for _, tt := range []struct {
		vip, nh netip.Addr
	}{{vip4, nh4}, {vip6, nh6}} {
		p, err := buildPath(tt.vip, tt.nh, r, false)
		if err != nil {
			t.Fatal(err)
		}
		nlri, err := apiutil.GetNativeNlri(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := nlri.String(); got != host(tt.vip).String() {
			t.Errorf("NLRI %s, want %s", got, host(tt.vip))
		}
		attrs, err := apiutil.GetNativePathAttributes(p)
		if err != nil {
			t.Fatal(err)
		}
		var nh netip.Addr
		var types []bgppkt.BGPAttrType
		for _, a := range attrs {
			types = append(types, a.GetType())
			switch a := a.(type) {
			case *bgppkt.PathAttributeNextHop:
				nh, _ = netip.AddrFromSlice(a.Value)
			case *bgppkt.PathAttributeMpReachNLRI:
				nh, _ = netip.AddrFromSlice(a.Nexthop)
			case *bgppkt.PathAttributeCommunities:
				if !slices.Equal(a.Value, r.communities) {
					t.Errorf("%s: communities %v", tt.vip, a.Value)
				}
			case *bgppkt.PathAttributeLocalPref:
				if a.Value != 300 {
					t.Errorf("%s: local-pref %d", tt.vip, a.Value)
				}
			}
		}
		if nh.Unmap() != tt.nh {
			t.Errorf("%s: next hop %s, want %s", tt.vip, nh, tt.nh)
		}
		nhType := bgppkt.BGP_ATTR_TYPE_NEXT_HOP
		if tt.vip.Is6() {
			nhType = bgppkt.BGP_ATTR_TYPE_MP_REACH_NLRI
		}
		want := []bgppkt.BGPAttrType{bgppkt.BGP_ATTR_TYPE_ORIGIN, nhType, bgppkt.BGP_ATTR_TYPE_COMMUNITIES, bgppkt.BGP_ATTR_TYPE_LOCAL_PREF}
		if !slices.Equal(types, want) {
			t.Errorf("%s: attribute types %v, want %v", tt.vip, types, want)
		}
	}
	// No communities and no local-pref: neither attribute is sent.
	p, err := buildPath(vip4, nh4, route{}, true)
	if err != nil {
		t.Fatal(err)
	}
	if !p.IsWithdraw || len(p.Pattrs) != 2 {
		t.Errorf("bare withdrawal: withdraw %v, %d attributes, want true, 2 (origin, next hop)", p.IsWithdraw, len(p.Pattrs))
	}
}

func TestCollectorsRegister(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	for _, c := range Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatalf("register: %v", err)
		}
	}
	advertised.WithLabelValues("ipv4").Set(3)
	defer advertised.WithLabelValues("ipv4").Set(0)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fams {
		names = append(names, f.GetName())
	}
	if !slices.Contains(names, "raftvip_bgp_advertised_prefixes") {
		t.Errorf("gathered %v, want raftvip_bgp_advertised_prefixes", names)
	}
}
