package bgprouter

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// newAPIPath builds the gobgp API path a router would list for prefix,
// learnt from neighbor, with extra attributes after ORIGIN and the next hop.
func newAPIPath(prefix netip.Prefix, neighbor string, nextHop netip.Addr, extra ...bgppkt.PathAttributeInterface) (*api.Path, error) {
	var nlri bgppkt.AddrPrefixInterface
	attrs := []bgppkt.PathAttributeInterface{bgppkt.NewPathAttributeOrigin(bgppkt.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if prefix.Addr().Is4() {
		nlri = bgppkt.NewIPAddrPrefix(uint8(prefix.Bits()), prefix.Addr().String())
		attrs = append(attrs, bgppkt.NewPathAttributeNextHop(nextHop.String()))
	} else {
		nlri = bgppkt.NewIPv6AddrPrefix(uint8(prefix.Bits()), prefix.Addr().String())
		attrs = append(attrs, bgppkt.NewPathAttributeMpReachNLRI(nextHop.String(), []bgppkt.AddrPrefixInterface{nlri}))
	}
	p, err := apiutil.NewPath(nlri, false, append(attrs, extra...), time.Now())
	if err != nil {
		return nil, err
	}
	p.NeighborIp = neighbor
	return p, nil
}

// apiPath is newAPIPath that fails the test on error.
func apiPath(t *testing.T, prefix netip.Prefix, neighbor string, nextHop netip.Addr, extra ...bgppkt.PathAttributeInterface) *api.Path {
	t.Helper()
	p, err := newAPIPath(prefix, neighbor, nextHop, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDecodePathIPv4(t *testing.T) {
	p := apiPath(t, p4, "198.51.100.11", n2,
		bgppkt.NewPathAttributeCommunities([]uint32{65000<<16 | 100, 0xffffff01}),
		bgppkt.NewPathAttributeLocalPref(200),
		bgppkt.NewPathAttributeAsPath([]bgppkt.AsPathParamInterface{bgppkt.NewAs4PathParam(bgppkt.BGP_ASPATH_ATTR_TYPE_SEQ, []uint32{64512, 64513})}))
	got, err := decodePath(p4.String(), p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Prefix != p4 || got.Neighbor != n1 || got.NextHop != n2 {
		t.Errorf("decoded %+v, want prefix %s, neighbor %s, next hop %s", got, p4, n1, n2)
	}
	if !slices.Equal(got.Communities, []string{"65000:100", "no-export"}) {
		t.Errorf("communities %v, want [65000:100 no-export]", got.Communities)
	}
	if got.LocalPref != 200 {
		t.Errorf("local-pref %d, want 200", got.LocalPref)
	}
	if !slices.Equal(got.ASPath, []uint32{64512, 64513}) {
		t.Errorf("AS path %v, want [64512 64513]", got.ASPath)
	}
}

func TestDecodePathIPv6(t *testing.T) {
	// gobgp lists IPv4 neighbors of an IPv6 listener as IPv4-mapped; the
	// router reports them as plain IPv4.
	got, err := decodePath(p6.String(), apiPath(t, p6, "::ffff:198.51.100.11", n3))
	if err != nil {
		t.Fatal(err)
	}
	if got.Prefix != p6 || got.Neighbor != n1 || got.NextHop != n3 {
		t.Errorf("decoded %+v, want prefix %s, neighbor %s, next hop %s", got, p6, n1, n3)
	}
	if got.Communities != nil || got.LocalPref != 0 || got.ASPath != nil {
		t.Errorf("decoded %+v, want no communities, local-pref or AS path", got)
	}
}

func TestDecodePathErrors(t *testing.T) {
	good := apiPath(t, p4, "198.51.100.11", n2)
	if _, err := decodePath("not-a-prefix", good); err == nil || !strings.Contains(err.Error(), `prefix "not-a-prefix"`) {
		t.Errorf("bad prefix: error %v", err)
	}
	bad := apiPath(t, p4, "nobody", n2)
	if _, err := decodePath(p4.String(), bad); err == nil || !strings.Contains(err.Error(), `neighbor of 198.51.100.100/32 "nobody"`) {
		t.Errorf("bad neighbor: error %v", err)
	}
	broken := apiPath(t, p4, "198.51.100.11", n2)
	broken.Pattrs = append(broken.Pattrs, nil)
	if _, err := decodePath(p4.String(), broken); err == nil || !strings.Contains(err.Error(), "attributes of 198.51.100.100/32") {
		t.Errorf("undecodable attributes: error %v", err)
	}
}

func TestFormatCommunity(t *testing.T) {
	tests := map[uint32]string{
		0:                  "0:0",
		65000<<16 | 100:    "65000:100",
		0xffffffff:         "65535:65535",
		0xffffff01:         "no-export",
		0xffffff02:         "no-advertise",
		0xffffff03:         "no-export-subconfed",
		0xffff0000:         "65535:0", // GRACEFUL_SHUTDOWN has no RFC 1997 name
		0xffffff04:         "65535:65284",
		64512<<16 | 0xffff: "64512:65535",
	}
	for c, want := range tests {
		if got := formatCommunity(c); got != want {
			t.Errorf("formatCommunity(%#x) = %q, want %q", c, got, want)
		}
	}
}

func TestAPIPeer(t *testing.T) {
	p := apiPeer(Neighbor{Address: n1, AS: 64512, Password: "s3cret", HoldTime: 9 * time.Second})
	if c := p.GetConf(); c.GetNeighborAddress() != "198.51.100.11" || c.GetPeerAsn() != 64512 || c.GetAuthPassword() != "s3cret" {
		t.Errorf("conf %+v", c)
	}
	if !p.GetTransport().GetPassiveMode() {
		t.Errorf("neighbor not passive: the router must only listen")
	}
	if tc := p.GetTimers().GetConfig(); tc.GetHoldTime() != 9 || tc.GetKeepaliveInterval() != 3 {
		t.Errorf("timers %+v, want hold 9, keepalive 3", tc)
	}
	var afis []api.Family_Afi
	for _, a := range p.GetAfiSafis() {
		f := a.GetConfig().GetFamily()
		if !a.GetConfig().GetEnabled() || f.GetSafi() != api.Family_SAFI_UNICAST {
			t.Errorf("family %v: enabled %v, want enabled unicast", f, a.GetConfig().GetEnabled())
		}
		afis = append(afis, f.GetAfi())
	}
	if !slices.Equal(afis, []api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6}) {
		t.Errorf("families %v, want IPv4 and IPv6 unicast", afis)
	}

	// Without a hold time gobgp's default applies; a short one still keeps
	// a keepalive interval of at least a second.
	if p := apiPeer(Neighbor{Address: n1, AS: 1}); p.Timers != nil {
		t.Errorf("no hold time: timers %+v, want none", p.Timers)
	}
	if tc := apiPeer(Neighbor{Address: n1, AS: 1, HoldTime: time.Second}).GetTimers().GetConfig(); tc.GetKeepaliveInterval() != 1 {
		t.Errorf("1s hold time: keepalive %d, want 1", tc.GetKeepaliveInterval())
	}
}
