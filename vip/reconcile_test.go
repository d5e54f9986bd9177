package vip

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// kaddr builds a kernel address as an address dump returns it.
func kaddr(prefix, label string, flags int) netlink.Addr {
	p := netip.MustParsePrefix(prefix)
	return netlink.Addr{
		IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Label: label, Flags: flags,
	}
}

func addrSet(vs ...string) map[netip.Addr]bool {
	m := map[netip.Addr]bool{}
	for _, v := range vs {
		m[netip.MustParseAddr(v)] = true
	}
	return m
}

func addrs(vs ...string) []netip.Addr {
	var out []netip.Addr
	for _, v := range vs {
		out = append(out, netip.MustParseAddr(v))
	}
	return out
}

func TestPlan(t *testing.T) {
	const npr, nodad = unix.IFA_F_NOPREFIXROUTE, unix.IFA_F_NODAD
	ours4 := func(ip string) netlink.Addr { return kaddr(ip+"/32", "eth0:rv", npr) }
	ours6 := func(ip string) netlink.Addr { return kaddr(ip+"/128", "", npr|nodad) }
	node := []netlink.Addr{
		kaddr("198.51.100.11/24", "eth0", 0),
		kaddr("2001:db8:100::11/64", "", nodad),
		kaddr("fe80::1/64", "", 0),
	}
	cases := []struct {
		name           string
		want, keep     map[netip.Addr]bool
		kernel         []netlink.Addr
		missing, stray []netip.Addr
	}{
		{
			name: "in sync",
			want: addrSet("198.51.100.100", "2001:db8:100::100"), keep: addrSet("198.51.100.100", "2001:db8:100::100"),
			kernel: append(slices.Clone(node), ours4("198.51.100.100"), ours6("2001:db8:100::100")),
		},
		{
			name:    "IPv6 flushed by a link flap",
			want:    addrSet("198.51.100.100", "2001:db8:100::100", "2001:db8:100::101"),
			keep:    addrSet("198.51.100.100", "2001:db8:100::100", "2001:db8:100::101"),
			kernel:  append(slices.Clone(node[:1]), ours4("198.51.100.100")),
			missing: addrs("2001:db8:100::100", "2001:db8:100::101"),
		},
		{
			name: "ours but not kept",
			want: addrSet("198.51.100.100"), keep: addrSet("198.51.100.100"),
			kernel: append(slices.Clone(node), ours4("198.51.100.100"), ours4("198.51.100.102"), ours6("2001:db8:100::102")),
			stray:  addrs("198.51.100.102", "2001:db8:100::102"),
		},
		{
			name: "kept but not wanted (lease ran out) is neither added nor removed",
			want: addrSet(), keep: addrSet("198.51.100.100", "198.51.100.101"),
			kernel: []netlink.Addr{ours4("198.51.100.100")},
		},
		{
			name: "foreign addresses are never stray",
			want: addrSet(), keep: addrSet(),
			kernel: append(slices.Clone(node),
				kaddr("198.51.100.120/32", "eth0", npr),       // no label
				kaddr("198.51.100.121/32", "eth0:rv", 0),      // no flag
				kaddr("198.51.100.122/24", "eth0:rv", npr),    // not a host address
				kaddr("198.51.100.123/32", "eth0:other", npr), // another label
				kaddr("2001:db8:100::120/128", "", npr),       // no NODAD
				kaddr("2001:db8:100::121/128", "", nodad),     // no NOPREFIXROUTE
				kaddr("2001:db8:100::122/64", "", npr|nodad),  // not a host address
			),
		},
		{
			name: "a foreign address equal to a wanted VIP does not count as ours",
			want: addrSet("198.51.100.100"), keep: addrSet("198.51.100.100"),
			kernel:  []netlink.Addr{kaddr("198.51.100.100/24", "eth0", 0)},
			missing: addrs("198.51.100.100"),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			missing, stray := plan("eth0", c.want, c.keep, c.kernel)
			if !slices.Equal(missing, c.missing) || !slices.Equal(stray, c.stray) {
				t.Errorf("plan = missing %v, stray %v; want missing %v, stray %v", missing, stray, c.missing, c.stray)
			}
		})
	}
}

func TestLinkUsable(t *testing.T) {
	cases := []struct {
		a    *netlink.LinkAttrs
		want bool
	}{
		{nil, false},
		{&netlink.LinkAttrs{Flags: 0, OperState: netlink.OperUp}, false},
		{&netlink.LinkAttrs{Flags: net.FlagUp, OperState: netlink.OperUp}, true},
		{&netlink.LinkAttrs{Flags: net.FlagUp, OperState: netlink.OperUnknown}, true},
		{&netlink.LinkAttrs{Flags: net.FlagUp, OperState: netlink.OperDown}, false},
		{&netlink.LinkAttrs{Flags: net.FlagUp, OperState: netlink.OperLowerLayerDown}, false},
	}
	for i, c := range cases {
		if got := linkUsable(c.a); got != c.want {
			t.Errorf("case %d: linkUsable(%+v) = %v, want %v", i, c.a, got, c.want)
		}
	}
}
