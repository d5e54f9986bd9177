package vip

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
)

// arpSender writes gratuitous ARP frames on one interface. It builds the
// frames with mdlayher/arp and mdlayher/ethernet and writes them through its
// own AF_PACKET socket rather than arp.Client, because arp.Dial insists on an
// IPv4 address already being on the interface, which a VIP-only or IPv6-only
// setup may not have. The socket carries a drop-all BPF filter: we only send,
// and an unread socket would otherwise queue every ARP frame on the segment.
type arpSender struct {
	conn *packet.Conn
	mac  net.HardwareAddr
}

// zeroMAC is the target hardware address of an ARP announcement request
// (RFC 5227 section 2.3: ignored, set to zero).
var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// openARP opens the raw socket on ifi. Call it inside the interface's namespace.
func openARP(ifi *net.Interface) (*arpSender, error) {
	if len(ifi.HardwareAddr) != len(ethernet.Broadcast) {
		return nil, fmt.Errorf("interface %q has no Ethernet hardware address", ifi.Name)
	}
	drop, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		return nil, fmt.Errorf("assemble drop filter: %w", err)
	}
	conn, err := packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), &packet.Config{Filter: drop})
	if err != nil {
		return nil, fmt.Errorf("open ARP socket on %q: %w", ifi.Name, err)
	}
	return &arpSender{conn: conn, mac: ifi.HardwareAddr}, nil
}

// garpFrames returns the two forms of gratuitous ARP for vip, both broadcast:
// a request (RFC 5227 announcement) and a reply whose target hardware address
// is our own. Linux treats both as gratuitous (sender IP == target IP, and for
// replies target MAC == sender MAC), so they override an existing neighbour
// entry even within its locktime; other stacks heed one form or the other.
func garpFrames(mac net.HardwareAddr, vip netip.Addr) ([][]byte, error) {
	req, err := arp.NewPacket(arp.OperationRequest, mac, vip, zeroMAC, vip)
	if err != nil {
		return nil, fmt.Errorf("build ARP request for %s: %w", vip, err)
	}
	rep, err := arp.NewPacket(arp.OperationReply, mac, vip, mac, vip)
	if err != nil {
		return nil, fmt.Errorf("build ARP reply for %s: %w", vip, err)
	}
	frames := make([][]byte, 0, 2)
	for _, p := range []*arp.Packet{req, rep} {
		payload, err := p.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("marshal ARP packet for %s: %w", vip, err)
		}
		f := &ethernet.Frame{
			Destination: ethernet.Broadcast,
			Source:      mac,
			EtherType:   ethernet.EtherTypeARP,
			Payload:     payload,
		}
		b, err := f.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("marshal Ethernet frame for %s: %w", vip, err)
		}
		frames = append(frames, b)
	}
	return frames, nil
}

// send writes the gratuitous ARP frames for vip once and returns how many
// frames went out.
func (s *arpSender) send(vip netip.Addr) (int, error) {
	frames, err := garpFrames(s.mac, vip)
	if err != nil {
		return 0, err
	}
	for i, f := range frames {
		if _, err := s.conn.WriteTo(f, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
			return i, fmt.Errorf("send gratuitous ARP for %s: %w", vip, err)
		}
	}
	return len(frames), nil
}

func (s *arpSender) close() error { return s.conn.Close() }
