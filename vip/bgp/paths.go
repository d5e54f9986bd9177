package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// route is the normalized form of one advertised VIP: what Set compares to
// decide whether a path must be (re-)advertised.
type route struct {
	communities []uint32 // sorted, unique
	localPref   uint32
}

// equal reports whether two routes carry the same attributes.
func (r route) equal(o route) bool {
	return r.localPref == o.localPref && slices.Equal(r.communities, o.communities)
}

// newRoute validates attrs and normalizes them.
func newRoute(a PathAttrs) (route, error) {
	r := route{localPref: a.LocalPref}
	for _, c := range a.Communities {
		v, err := parseCommunity(c)
		if err != nil {
			return route{}, err
		}
		r.communities = append(r.communities, v)
	}
	slices.Sort(r.communities)
	r.communities = slices.Compact(r.communities)
	return r, nil
}

// normalizeVIP accepts a valid, zone-less address and unmaps 4in6 addresses,
// so that one VIP has one key.
func normalizeVIP(a netip.Addr) (netip.Addr, error) {
	if !a.IsValid() {
		return a, fmt.Errorf("invalid VIP address")
	}
	if a.Zone() != "" {
		return a, fmt.Errorf("VIP %s: zoned addresses cannot be advertised", a)
	}
	return a.Unmap(), nil
}

// buildPath makes the gobgp path for vip: a host prefix with ORIGIN IGP, the
// next hop of its family (NEXT_HOP for IPv4, MP_REACH_NLRI for IPv6), and the
// route's communities and LOCAL_PREF. gobgp drops LOCAL_PREF towards eBGP peers.
func buildPath(vip, nextHop netip.Addr, r route, withdraw bool) (*api.Path, error) {
	var nlri bgppkt.AddrPrefixInterface
	attrs := []bgppkt.PathAttributeInterface{bgppkt.NewPathAttributeOrigin(bgppkt.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if vip.Is4() {
		nlri = bgppkt.NewIPAddrPrefix(32, vip.String())
		attrs = append(attrs, bgppkt.NewPathAttributeNextHop(nextHop.String()))
	} else {
		nlri = bgppkt.NewIPv6AddrPrefix(128, vip.String())
		attrs = append(attrs, bgppkt.NewPathAttributeMpReachNLRI(nextHop.String(), []bgppkt.AddrPrefixInterface{nlri}))
	}
	if len(r.communities) > 0 {
		attrs = append(attrs, bgppkt.NewPathAttributeCommunities(r.communities))
	}
	if r.localPref != 0 {
		attrs = append(attrs, bgppkt.NewPathAttributeLocalPref(r.localPref))
	}
	p, err := apiutil.NewPath(nlri, withdraw, attrs, time.Now())
	if err != nil {
		return nil, fmt.Errorf("path for %s: %w", vip, err)
	}
	return p, nil
}

// families are the AFI-SAFIs every peer is configured with.
var families = []*api.Family{
	{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST},
	{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST},
}

// familyName is the metrics label of an address's family.
func familyName(a netip.Addr) string {
	if a.Is4() {
		return "ipv4"
	}
	return "ipv6"
}
