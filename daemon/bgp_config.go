package daemon

import (
	"net/netip"
	"os"
	"strings"

	"github.com/raftvip/raftvip/vip/bgp"
)

// bgpSettings is the parsed form of the --bgp-* flags: everything the node's BGP
// speaker needs, and the per-pool path attributes its VIPs carry.
type bgpSettings struct {
	AS       uint32
	RouterID netip.Addr
	Peers    []bgp.Peer
	Source   netip.Addr
	// NextHop4 and NextHop6 are the node's addresses routers forward VIP traffic to;
	// an invalid one means VIPs of that family cannot be advertised from this node.
	NextHop4 netip.Addr
	NextHop6 netip.Addr
	// PoolAttrs are the path attributes of each pool's VIPs (--bgp-pool-attrs).
	PoolAttrs map[string]bgp.PathAttrs
}

// speakerConfig is the vip/bgp configuration of these settings.
func (s bgpSettings) speakerConfig() bgp.Config {
	return bgp.Config{AS: s.AS, RouterID: s.RouterID, SourceAddress: s.Source,
		NextHop4: s.NextHop4, NextHop6: s.NextHop6, Peers: s.Peers}
}

// canAdvertise reports whether this node has a next hop of vip's family.
func (s bgpSettings) canAdvertise(vip netip.Addr) bool {
	if vip.Is4() {
		return s.NextHop4.IsValid()
	}
	return s.NextHop6.IsValid()
}

// parseBGP checks the --bgp-* flags. In l2 mode none may be set (they would be
// silently ignored); in bgp mode --bgp-as and at least one --bgp-peer are required,
// and every control-plane VIP needs a next hop of its family. It runs after the
// advertise address, the control-plane VIPs and the pools are parsed.
func (p *Parsed) parseBGP() error {
	c := p.Config
	if p.Mode != ModeBGP {
		// In flag order, so the first one set is always the one reported.
		for _, f := range []struct{ flag, v string }{
			{"bgp-as", c.BGPAS}, {"bgp-router-id", c.BGPRouterID}, {"bgp-peer", strings.Join(c.BGPPeers, " ")},
			{"bgp-source-address", c.BGPSourceAddress}, {"bgp-next-hop-ipv6", c.BGPNextHopIPv6},
			{"bgp-pool-attrs", strings.Join(c.BGPPoolAttrs, " ")}, {"bgp-password-file", c.BGPPasswordFile},
		} {
			if f.v != "" {
				return flagErr(f.flag, f.v, "only used with --mode bgp (the mode is %s)", p.Mode)
			}
		}
		return nil
	}
	var s bgpSettings
	if c.BGPAS == "" {
		return flagErr("bgp-as", "", "bgp mode needs this node's AS number")
	}
	as, err := bgp.ParseAS(c.BGPAS)
	if err != nil {
		return flagErr("bgp-as", c.BGPAS, "%v", err)
	}
	s.AS = as
	if err := s.parsePeers(c.BGPPeers); err != nil {
		return err
	}
	if err := s.readPassword(c.BGPPasswordFile); err != nil {
		return err
	}
	if p.Advertise.Unmap().Is4() {
		s.NextHop4 = p.Advertise.Unmap()
	} else {
		s.NextHop6 = p.Advertise
	}
	if c.BGPNextHopIPv6 != "" {
		a, err := netip.ParseAddr(c.BGPNextHopIPv6)
		if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" || !a.IsGlobalUnicast() {
			return flagErr("bgp-next-hop-ipv6", c.BGPNextHopIPv6, "want this node's global IPv6 address")
		}
		s.NextHop6 = a
	}
	if s.RouterID, err = parseRouterID(c.BGPRouterID, s.NextHop4); err != nil {
		return err
	}
	if c.BGPSourceAddress != "" {
		a, err := netip.ParseAddr(c.BGPSourceAddress)
		if err != nil || a.Zone() != "" {
			return flagErr("bgp-source-address", c.BGPSourceAddress, "not an IP address")
		}
		s.Source = a.Unmap()
	}
	for _, v := range p.VIPs {
		if !s.canAdvertise(v) {
			if v.Is6() {
				return flagErr("control-plane-vip", v.String(), "bgp mode advertises an IPv6 VIP with an IPv6 next hop: give --bgp-next-hop-ipv6 (this node's IPv6 address)")
			}
			return flagErr("control-plane-vip", v.String(), "bgp mode advertises an IPv4 VIP with an IPv4 next hop, and --advertise-address %s is IPv6", p.Advertise)
		}
	}
	if s.PoolAttrs, err = parsePoolAttrs(c.BGPPoolAttrs, p.Config.Pools); err != nil {
		return err
	}
	p.BGP = s
	return nil
}

// parsePeers parses every --bgp-peer and refuses a router given twice.
func (s *bgpSettings) parsePeers(raw []string) error {
	if len(raw) == 0 {
		return flagErr("bgp-peer", "", "bgp mode needs at least one router: ADDRESS,AS[,port=N][,password=S][,multihop=N][,hold=DURATION]")
	}
	seen := map[netip.Addr]bool{}
	for _, r := range raw {
		peer, err := bgp.ParsePeer(r)
		if err != nil {
			return &FlagError{Flag: "bgp-peer", Err: err}
		}
		if seen[peer.Address] {
			return flagErr("bgp-peer", r, "router %s is given twice", peer.Address)
		}
		seen[peer.Address] = true
		s.Peers = append(s.Peers, peer)
	}
	return nil
}

// readPassword sets the password of every router from --bgp-password-file: one
// line, taken as is but for the line break. A router that also has password= in
// --bgp-peer is refused, so there is never a doubt which password a session uses.
func (s *bgpSettings) readPassword(path string) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return flagErr("bgp-password-file", path, "cannot read the BGP password: %v", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	switch {
	case pw == "":
		return flagErr("bgp-password-file", path, "the file is empty; it must hold the TCP MD5 password")
	case strings.ContainsAny(pw, "\r\n"):
		return flagErr("bgp-password-file", path, "the file has more than one line; it must hold only the TCP MD5 password")
	}
	for i := range s.Peers {
		if s.Peers[i].Password != "" {
			return flagErr("bgp-password-file", path, "router %s also has password= in --bgp-peer; give the password in one place", s.Peers[i].Address)
		}
		s.Peers[i].Password = pw
	}
	return nil
}

// parseRouterID is --bgp-router-id, by default the node's IPv4 address: BGP
// identifiers are IPv4-shaped, so IPv6-only nodes must give one.
func parseRouterID(raw string, nextHop4 netip.Addr) (netip.Addr, error) {
	if raw == "" {
		if !nextHop4.IsValid() {
			return netip.Addr{}, flagErr("bgp-router-id", "", "must be set when --advertise-address is IPv6: a BGP router ID is an IPv4 address")
		}
		return nextHop4, nil
	}
	a, err := netip.ParseAddr(raw)
	if err != nil || !a.Unmap().Is4() || a.IsUnspecified() {
		return netip.Addr{}, flagErr("bgp-router-id", raw, "want a non-zero IPv4 address")
	}
	return a.Unmap(), nil
}

// parsePoolAttrs parses the repeatable POOL=ATTRS flag. When --pool flags are
// given the pool must be one of them, so a typo does not silently drop attributes;
// workers run without --pool and take the names on trust.
func parsePoolAttrs(raw, poolFlags []string) (map[string]bgp.PathAttrs, error) {
	known := map[string]bool{}
	for _, f := range poolFlags {
		name, _, _ := strings.Cut(f, "=")
		known[name] = true
	}
	out := map[string]bgp.PathAttrs{}
	for _, r := range raw {
		name, spec, ok := strings.Cut(r, "=")
		if !ok || name == "" {
			return nil, flagErr("bgp-pool-attrs", r, "want POOL=ATTRS, e.g. web=community=65000:100,local-pref=200")
		}
		if _, dup := out[name]; dup {
			return nil, flagErr("bgp-pool-attrs", r, "pool %q is given twice", name)
		}
		if len(known) > 0 && !known[name] {
			return nil, flagErr("bgp-pool-attrs", r, "no --pool named %q", name)
		}
		attrs, err := bgp.ParsePathAttrs(spec)
		if err != nil {
			return nil, &FlagError{Flag: "bgp-pool-attrs", Value: r, Err: err}
		}
		out[name] = attrs
	}
	return out, nil
}
