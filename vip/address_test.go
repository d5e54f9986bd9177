package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/raftvip/raftvip/test/lab"
)

func TestCheckVIP(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1)
	v4only := lab.New(t, 1, lab.WithoutIPv6())
	// dummy0 stays down; dummy1 is up with only a link-local IPv6 address.
	// (veth pairs inside the node: the lab kernel may lack the dummy driver.)
	for _, args := range [][]string{
		{"ip", "link", "add", "dummy0", "type", "veth", "peer", "name", "dummy0p"},
		{"ip", "link", "add", "dummy1", "type", "veth", "peer", "name", "dummy1p"},
		{"ip", "link", "set", "dummy1p", "up"},
		{"ip", "link", "set", "dummy1", "up"},
		{"ip", "addr", "add", "fe80::1/64", "dev", "dummy1"},
	} {
		if _, err := l.Exec(l.Node(0), args...); err != nil {
			t.Fatal(err)
		}
	}
	// Our own /32 leftovers do not make a VIP valid.
	inNS(t, l, l.Node(0), func() error { return AddAddress(lab.Iface, netip.MustParseAddr("203.0.113.7")) })

	cases := []struct {
		lab   *lab.Lab
		iface string
		vip   string
		want  []string // substrings of the error; nil means valid
	}{
		{l, "eth0", "198.51.100.100", nil},
		{l, "eth0", "198.51.100.11", nil},
		{l, "eth0", "2001:db8:100::100", nil},
		{l, "eth0", "::ffff:198.51.100.100", nil},
		{l, "eth0", "203.0.113.5", []string{`"eth0"`, "203.0.113.5", "outside every subnet", "198.51.100.0/24"}},
		{l, "eth0", "203.0.113.7", []string{`"eth0"`, "203.0.113.7", "outside every subnet"}},
		{l, "eth0", "2001:db8:200::1", []string{`"eth0"`, "2001:db8:200::1", "outside every subnet", "2001:db8:100::/64"}},
		{l, "nope0", "198.51.100.100", []string{`"nope0"`, "198.51.100.100"}},
		{l, "dummy0", "198.51.100.100", []string{`"dummy0"`, "198.51.100.100", "down"}},
		{l, "dummy1", "2001:db8:100::100", []string{`"dummy1"`, "2001:db8:100::100", "no global IPv6 address"}},
		{l, "dummy1", "198.51.100.100", []string{`"dummy1"`, "198.51.100.100", "no ipv4 subnet"}},
		{l, "eth0", "127.0.0.1", []string{`"eth0"`, "127.0.0.1", "not a unicast"}},
		{v4only, "eth0", "2001:db8:100::100", []string{`"eth0"`, "2001:db8:100::100", "no global IPv6 address"}},
		{v4only, "eth0", "198.51.100.100", nil},
	}
	for _, c := range cases {
		var err error
		inNS(t, c.lab, c.lab.Node(0), func() error {
			err = CheckVIP(c.iface, netip.MustParseAddr(c.vip))
			return nil
		})
		switch {
		case c.want == nil && err != nil:
			t.Errorf("CheckVIP(%s, %s) = %v, want ok", c.iface, c.vip, err)
		case c.want != nil && err == nil:
			t.Errorf("CheckVIP(%s, %s) accepted it, want an error mentioning %q", c.iface, c.vip, c.want)
		case c.want != nil:
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("CheckVIP(%s, %s) = %q, want it to mention %q", c.iface, c.vip, err, w)
				}
			}
		}
	}
}

func TestAddressLifecycle(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1)
	node := l.Node(0)
	for range 2 {
		inNS(t, l, node, func() error {
			return errors.Join(AddAddress(lab.Iface, vip4), AddAddress(lab.Iface, vip6))
		})
	}
	out, err := l.Exec(node, "ip", "addr", "show", "dev", lab.Iface)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"inet 198.51.100.100/32 scope global noprefixroute eth0:rv",
		"inet6 2001:db8:100::100/128 scope global nodad noprefixroute",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ip addr lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "198.51.100.100/32") != 1 {
		t.Errorf("adding twice duplicated the address:\n%s", out)
	}
	routes, err := l.Exec(node, "ip", "-4", "route", "show", "table", "main")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(routes, "198.51.100.100") {
		t.Errorf("VIP got a prefix route:\n%s", routes)
	}
	routes6, err := l.Exec(node, "ip", "-6", "route", "show", "table", "main")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(routes6, "2001:db8:100::100") {
		t.Errorf("IPv6 VIP got a prefix route:\n%s", routes6)
	}
	// A hand-made /32 is not ours.
	if _, err := l.Exec(node, "ip", "addr", "add", "198.51.100.102/32", "dev", lab.Iface); err != nil {
		t.Fatal(err)
	}
	if got, want := listVIPs(t, l, 0), []netip.Addr{vip4, vip6}; !slices.Equal(got, want) {
		t.Errorf("ListVIPAddresses = %v, want %v", got, want)
	}
	for range 2 {
		inNS(t, l, node, func() error {
			return errors.Join(RemoveAddress(lab.Iface, vip4), RemoveAddress(lab.Iface, vip6))
		})
	}
	if got := listVIPs(t, l, 0); len(got) != 0 {
		t.Errorf("ListVIPAddresses after removal = %v", got)
	}
	out, err = l.Exec(node, "ip", "addr", "show", "dev", lab.Iface)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "198.51.100.100") || strings.Contains(out, "2001:db8:100::100") {
		t.Errorf("VIPs still on eth0 after removal:\n%s", out)
	}
	if !strings.Contains(out, "198.51.100.11/24") || !strings.Contains(out, "198.51.100.102/32") {
		t.Errorf("removal touched addresses that are not VIPs:\n%s", out)
	}
	inNS(t, l, node, func() error {
		if err := AddAddress("nope0", vip4); err == nil || !strings.Contains(err.Error(), "nope0") {
			return fmt.Errorf("AddAddress on a missing interface: %v", err)
		}
		if _, err := ListVIPAddresses("nope0"); err == nil {
			return errors.New("ListVIPAddresses on a missing interface succeeded")
		}
		return nil
	})
}

func TestCleanupStale(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1)
	node := l.Node(0)
	leftover := []netip.Addr{vip4, vip6, netip.MustParseAddr("198.51.100.103")}
	inNS(t, l, node, func() error {
		var errs []error
		for _, a := range leftover {
			errs = append(errs, AddAddress(lab.Iface, a))
		}
		return errors.Join(errs...)
	})
	if _, err := l.Exec(node, "ip", "addr", "add", "198.51.100.102/32", "dev", lab.Iface); err != nil {
		t.Fatal(err)
	}
	h := newHolder(t, l, 0)
	if err := h.Set(leases(vip4b)); err != nil {
		t.Fatal(err)
	}
	removed, err := h.CleanupStale([]netip.Addr{netip.MustParseAddr("198.51.100.103")})
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Addr{vip4, vip6}; !slices.Equal(removed, want) {
		t.Errorf("CleanupStale removed %v, want %v", removed, want)
	}
	want := []netip.Addr{vip4b, netip.MustParseAddr("198.51.100.103")}
	slices.SortFunc(want, netip.Addr.Compare)
	if got := listVIPs(t, l, 0); !slices.Equal(got, want) {
		t.Errorf("after cleanup eth0 carries %v, want %v", got, want)
	}
	out, err := l.Exec(node, "ip", "addr", "show", "dev", lab.Iface)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "198.51.100.102/32") {
		t.Errorf("CleanupStale removed an address that was not ours:\n%s", out)
	}
}
