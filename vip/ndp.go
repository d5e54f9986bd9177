package vip

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// allNodes is the link-scope all-nodes group unsolicited advertisements go to.
var allNodes = netip.MustParseAddr("ff02::1")

// ndpSender writes unsolicited Neighbor Advertisements on one interface. The
// messages come from mdlayher/ndp; the socket is our own raw ICMPv6 socket
// because ndp.Conn names the outgoing interface by its name as an IPv6 zone,
// which the Go runtime resolves through a process-wide cache: wrong as soon as
// one process drives interfaces of the same name in several namespaces (the
// lab), and ndp.Listen with ndp.LinkLocal would also have to wait out DAD on
// the link-local address. We send with the interface index in the packet info
// and the VIP itself as source: it is on the interface without DAD, so it is
// usable the moment it is added. The socket filters out every ICMPv6 type.
type ndpSender struct {
	conn  *ipv6.PacketConn
	index int
	mac   net.HardwareAddr
}

// openNDP opens the raw ICMPv6 socket. Call it inside the interface's namespace.
func openNDP(ifi *net.Interface) (*ndpSender, error) {
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, fmt.Errorf("open ICMPv6 socket for %q: %w", ifi.Name, err)
	}
	pc := c.IPv6PacketConn()
	var filter ipv6.ICMPFilter
	filter.SetAll(true)
	setup := []func() error{
		func() error { return pc.SetHopLimit(ndp.HopLimit) },
		func() error { return pc.SetMulticastHopLimit(ndp.HopLimit) },
		func() error { return pc.SetMulticastLoopback(false) },
		func() error { return pc.SetChecksum(true, 2) },
		func() error { return pc.SetICMPFilter(&filter) },
	}
	for _, f := range setup {
		if err := f(); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("set up ICMPv6 socket for %q: %w", ifi.Name, err)
		}
	}
	return &ndpSender{conn: pc, index: ifi.Index, mac: ifi.HardwareAddr}, nil
}

// unsolicitedNA builds the advertisement for vip: override set so receivers
// replace a cached link-layer address, solicited clear, and our MAC in the
// target link-layer address option (RFC 4861 section 7.2.6).
func unsolicitedNA(mac net.HardwareAddr, vip netip.Addr) ([]byte, error) {
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: vip,
		Options: []ndp.Option{
			&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac},
		},
	}
	b, err := ndp.MarshalMessage(na)
	if err != nil {
		return nil, fmt.Errorf("build neighbor advertisement for %s: %w", vip, err)
	}
	return b, nil
}

// send writes one unsolicited advertisement for vip to ff02::1.
func (s *ndpSender) send(vip netip.Addr) (int, error) {
	b, err := unsolicitedNA(s.mac, vip)
	if err != nil {
		return 0, err
	}
	cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, Src: vip.AsSlice(), IfIndex: s.index}
	if _, err := s.conn.WriteTo(b, cm, &net.IPAddr{IP: allNodes.AsSlice()}); err != nil {
		return 0, fmt.Errorf("send neighbor advertisement for %s: %w", vip, err)
	}
	return 1, nil
}

func (s *ndpSender) close() error { return s.conn.Close() }
