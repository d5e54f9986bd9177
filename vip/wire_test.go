package vip

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var testMAC = net.HardwareAddr{0x02, 0x72, 0x76, 0, 0, 0x11}

func TestGARPFrames(t *testing.T) {
	vip := netip.MustParseAddr("198.51.100.100")
	frames, err := garpFrames(testMAC, vip)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 2 {
		t.Fatalf("got %d frames, want request and reply", len(frames))
	}
	wantTHA := []net.HardwareAddr{zeroMAC, testMAC}
	for i, op := range []arp.Operation{arp.OperationRequest, arp.OperationReply} {
		var f ethernet.Frame
		if err := f.UnmarshalBinary(frames[i]); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f.Destination, ethernet.Broadcast) || !bytes.Equal(f.Source, testMAC) || f.EtherType != ethernet.EtherTypeARP {
			t.Errorf("frame %d: dst %s src %s type %v, want broadcast from %s, ARP", i, f.Destination, f.Source, f.EtherType, testMAC)
		}
		var p arp.Packet
		if err := p.UnmarshalBinary(f.Payload); err != nil {
			t.Fatal(err)
		}
		if p.Operation != op {
			t.Errorf("frame %d: operation %v, want %v", i, p.Operation, op)
		}
		if p.SenderIP != vip || p.TargetIP != vip {
			t.Errorf("frame %d: sender %s target %s, want both %s (gratuitous)", i, p.SenderIP, p.TargetIP, vip)
		}
		if !bytes.Equal(p.SenderHardwareAddr, testMAC) {
			t.Errorf("frame %d: sender MAC %s, want %s", i, p.SenderHardwareAddr, testMAC)
		}
		if !bytes.Equal(p.TargetHardwareAddr, wantTHA[i]) {
			t.Errorf("frame %d: target MAC %s, want %s", i, p.TargetHardwareAddr, wantTHA[i])
		}
	}
	if _, err := garpFrames(testMAC, netip.MustParseAddr("2001:db8:100::100")); err == nil {
		t.Errorf("garpFrames accepted an IPv6 address")
	}
}

func TestUnsolicitedNA(t *testing.T) {
	vip := netip.MustParseAddr("2001:db8:100::100")
	b, err := unsolicitedNA(testMAC, vip)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ndp.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok {
		t.Fatalf("parsed %T, want a neighbor advertisement", m)
	}
	if !na.Override || na.Solicited || na.Router {
		t.Errorf("flags override=%v solicited=%v router=%v, want override only", na.Override, na.Solicited, na.Router)
	}
	if na.TargetAddress != vip {
		t.Errorf("target %s, want %s", na.TargetAddress, vip)
	}
	if len(na.Options) != 1 {
		t.Fatalf("options %v, want the target link-layer address", na.Options)
	}
	lla, ok := na.Options[0].(*ndp.LinkLayerAddress)
	if !ok || lla.Direction != ndp.Target || !bytes.Equal(lla.Addr, testMAC) {
		t.Errorf("option %+v, want target link-layer address %s", na.Options[0], testMAC)
	}
	if _, err := unsolicitedNA(testMAC, netip.MustParseAddr("198.51.100.100")); err == nil {
		t.Errorf("unsolicitedNA accepted an IPv4 address")
	}
}

func nlAddr(cidr string, label string, flags int) netlink.Addr {
	p := netip.MustParsePrefix(cidr)
	return netlink.Addr{
		IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Label: label,
		Flags: flags,
	}
}

func TestIsOurs(t *testing.T) {
	const npr, nodad = unix.IFA_F_NOPREFIXROUTE, unix.IFA_F_NODAD
	long := "enp0s31f6longx" // 14 bytes: "<name>:rv" does not fit a label
	cases := []struct {
		name  string
		iface string
		addr  netlink.Addr
		want  bool
	}{
		{"v4 marked", "eth0", nlAddr("198.51.100.100/32", "eth0:rv", npr), true},
		{"v4 marked with permanent flag", "eth0", nlAddr("198.51.100.100/32", "eth0:rv", npr|unix.IFA_F_PERMANENT), true},
		{"v4 without label", "eth0", nlAddr("198.51.100.100/32", "eth0", npr), false},
		{"v4 label of another interface", "eth0", nlAddr("198.51.100.100/32", "eth1:rv", npr), false},
		{"v4 without noprefixroute", "eth0", nlAddr("198.51.100.100/32", "eth0:rv", 0), false},
		{"v4 subnet address", "eth0", nlAddr("198.51.100.11/24", "eth0:rv", npr), false},
		{"v4 long interface, flags only", long, nlAddr("198.51.100.100/32", long, npr), true},
		{"v6 marked", "eth0", nlAddr("2001:db8:100::100/128", "", npr|nodad), true},
		{"v6 without nodad", "eth0", nlAddr("2001:db8:100::100/128", "", npr), false},
		{"v6 subnet address", "eth0", nlAddr("2001:db8:100::11/64", "", npr|nodad), false},
		{"no address", "eth0", netlink.Addr{}, false},
	}
	for _, c := range cases {
		if got := isOurs(c.iface, c.addr); got != c.want {
			t.Errorf("%s: isOurs = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestVIPLabel(t *testing.T) {
	if got := vipLabel("eth0"); got != "eth0:rv" {
		t.Errorf("vipLabel(eth0) = %q", got)
	}
	if got := vipLabel("enp0s31f6abc"); got != "enp0s31f6abc:rv" {
		t.Errorf("vipLabel of a 12-byte name = %q, want it to fit in 15", got)
	}
	if got := vipLabel("enp0s31f6abcd"); got != "" {
		t.Errorf("vipLabel of a 13-byte name = %q, want none (over 15 bytes)", got)
	}
}

func TestNormalize(t *testing.T) {
	for _, bad := range []string{"0.0.0.0", "127.0.0.1", "224.0.0.1", "169.254.1.1", "::", "::1", "ff02::1", "fe80::1", "fe80::1%eth0"} {
		if _, err := normalize(netip.MustParseAddr(bad)); err == nil {
			t.Errorf("normalize(%s) accepted it", bad)
		}
	}
	if _, err := normalize(netip.Addr{}); err == nil {
		t.Errorf("normalize accepted the zero Addr")
	}
	got, err := normalize(netip.MustParseAddr("::ffff:198.51.100.100"))
	if err != nil || got != netip.MustParseAddr("198.51.100.100") {
		t.Errorf("normalize(v4-mapped) = %s, %v; want the plain IPv4 address", got, err)
	}
}

func TestVIPNetlinkAddr(t *testing.T) {
	a := vipNetlinkAddr("eth0", netip.MustParseAddr("198.51.100.100"))
	if ones, bits := a.Mask.Size(); ones != 32 || bits != 32 {
		t.Errorf("v4 mask /%d of %d, want /32", ones, bits)
	}
	if a.Label != "eth0:rv" || a.Flags != unix.IFA_F_NOPREFIXROUTE {
		t.Errorf("v4 label %q flags %#x", a.Label, a.Flags)
	}
	b := vipNetlinkAddr("eth0", netip.MustParseAddr("2001:db8:100::100"))
	if ones, bits := b.Mask.Size(); ones != 128 || bits != 128 {
		t.Errorf("v6 mask /%d of %d, want /128", ones, bits)
	}
	if b.Label != "" || b.Flags != unix.IFA_F_NOPREFIXROUTE|unix.IFA_F_NODAD {
		t.Errorf("v6 label %q flags %#x", b.Label, b.Flags)
	}
	if !isOurs("eth0", *a) || !isOurs("eth0", *b) {
		t.Errorf("addresses we build are not recognised as ours")
	}
}

func TestCollectorsRegister(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	for _, c := range Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatalf("register: %v", err)
		}
	}
	announcements.WithLabelValues("ipv4").Add(0)
	held.WithLabelValues("eth0", "ipv4").Set(0)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	all := strings.Join(names, " ")
	for _, want := range []string{"raftvip_vip_announcements_total", "raftvip_vip_held"} {
		if !strings.Contains(all, want) {
			t.Errorf("gathered %q, missing %s", all, want)
		}
	}
}
