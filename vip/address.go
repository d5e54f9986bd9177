// Package vip makes this node carry the virtual IPs the FSM says it owns: it
// puts them on the interface with netlink and tells the L2 segment with
// gratuitous ARP (IPv4) or unsolicited Neighbor Advertisements (IPv6). It never
// decides who announces; the daemon hands it the desired set.
//
// How our addresses are recognised after a crash: every VIP is added as a host
// address (/32 or /128) with IFA_F_NOPREFIXROUTE, so the kernel installs no
// prefix route for it. IPv4 VIPs also carry the address label "<iface>:rv"
// (when that fits the kernel's 15 byte label limit); IPv6 has no address
// labels, so IPv6 VIPs are marked by IFA_F_NODAD on top. An address counts as
// ours only when it has all of these marks, which an operator's ordinary
// `ip addr add` never sets.
package vip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// labelSuffix marks IPv4 VIPs we added, so CleanupStale can find leftovers.
const labelSuffix = ":rv"

// maxLabelLen is the kernel's IFNAMSIZ minus the terminating NUL.
const maxLabelLen = 15

// dumpRetries bounds retries of an address dump interrupted by concurrent changes.
const dumpRetries = 5

// vipLabel returns the IPv4 address label for VIPs on iface, or "" when the
// label would not fit and only the flags mark our addresses.
func vipLabel(iface string) string {
	l := iface + labelSuffix
	if len(l) > maxLabelLen {
		return ""
	}
	return l
}

// vipFlags returns the address flags we set for a VIP of the given family.
func vipFlags(vip netip.Addr) int {
	if vip.Is4() {
		return unix.IFA_F_NOPREFIXROUTE
	}
	return unix.IFA_F_NOPREFIXROUTE | unix.IFA_F_NODAD
}

// vipNetlinkAddr builds the netlink address for vip on iface, marked as ours.
func vipNetlinkAddr(iface string, vip netip.Addr) *netlink.Addr {
	bits := vip.BitLen()
	a := &netlink.Addr{
		IPNet: &net.IPNet{IP: vip.AsSlice(), Mask: net.CIDRMask(bits, bits)},
		Flags: vipFlags(vip),
	}
	if vip.Is4() {
		a.Label = vipLabel(iface)
	}
	return a
}

// isOurs reports whether a kernel address on iface carries our VIP marks.
func isOurs(iface string, a netlink.Addr) bool {
	if a.IPNet == nil {
		return false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	ones, bits := a.Mask.Size()
	if bits == 0 || ones != bits || ones != ip.BitLen() {
		return false
	}
	want := vipFlags(ip)
	if a.Flags&want != want {
		return false
	}
	if ip.Is4() {
		if l := vipLabel(iface); l != "" {
			return a.Label == l
		}
	}
	return true
}

// normalize validates a VIP and strips a v4-in-v6 mapping.
func normalize(vip netip.Addr) (netip.Addr, error) {
	if !vip.IsValid() {
		return netip.Addr{}, errors.New("invalid (zero) address")
	}
	vip = vip.Unmap()
	if vip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%s: VIP must not carry a zone", vip)
	}
	if vip.IsUnspecified() || vip.IsLoopback() || vip.IsMulticast() ||
		vip.IsLinkLocalUnicast() || vip.IsInterfaceLocalMulticast() {
		return netip.Addr{}, fmt.Errorf("%s: not a unicast address a VIP can use", vip)
	}
	return vip, nil
}

// family returns the netlink family constant for vip.
func family(vip netip.Addr) int {
	if vip.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// familyName is the metric label for vip's family.
func familyName(vip netip.Addr) string {
	if vip.Is4() {
		return "ipv4"
	}
	return "ipv6"
}

// addrList dumps the addresses of link, retrying a dump interrupted by
// concurrent address changes.
func addrList(h *netlink.Handle, link netlink.Link, fam int) ([]netlink.Addr, error) {
	var (
		addrs []netlink.Addr
		err   error
	)
	for range dumpRetries {
		addrs, err = h.AddrList(link, fam)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return addrs, err
		}
	}
	return addrs, err
}

// CheckVIP refuses, at agent start, a VIP the interface cannot carry on the L2
// segment: the interface must exist and be up, an IPv6 VIP needs a global IPv6
// address on it, and the VIP must lie inside a subnet configured on the
// interface (host /32 and /128 addresses, ours included, do not count).
// Call it from the namespace that owns the interface.
func CheckVIP(ifaceName string, vip netip.Addr) error {
	return checkVIP(&netlink.Handle{}, ifaceName, vip)
}

func checkVIP(h *netlink.Handle, ifaceName string, vip netip.Addr) error {
	nvip, err := normalize(vip)
	if err != nil {
		return fmt.Errorf("VIP %s on interface %q: %w", vip, ifaceName, err)
	}
	vip = nvip
	link, err := h.LinkByName(ifaceName)
	if err != nil {
		return fmt.Errorf("VIP %s: interface %q: %w", vip, ifaceName, err)
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("VIP %s: interface %q is down", vip, ifaceName)
	}
	addrs, err := addrList(h, link, family(vip))
	if err != nil {
		return fmt.Errorf("VIP %s: list addresses of interface %q: %w", vip, ifaceName, err)
	}
	var subnets []netip.Prefix
	globalV6 := false
	for _, a := range addrs {
		p, ok := prefixOf(a)
		if !ok || p.Addr().IsLinkLocalUnicast() || isOurs(ifaceName, a) {
			continue
		}
		if p.Addr().Is6() && p.Addr().IsGlobalUnicast() {
			globalV6 = true
		}
		if p.Bits() < p.Addr().BitLen() {
			subnets = append(subnets, p)
		}
	}
	if vip.Is6() && !globalV6 {
		return fmt.Errorf("VIP %s: interface %q has no global IPv6 address, it cannot carry an IPv6 VIP", vip, ifaceName)
	}
	for _, p := range subnets {
		if p.Masked().Contains(vip) {
			return nil
		}
	}
	if len(subnets) == 0 {
		return fmt.Errorf("VIP %s: interface %q has no %s subnet configured, the VIP would not be reachable on its segment",
			vip, ifaceName, familyName(vip))
	}
	names := make([]string, len(subnets))
	for i, p := range subnets {
		names[i] = p.Masked().String()
	}
	return fmt.Errorf("VIP %s: outside every subnet of interface %q (%s)", vip, ifaceName, strings.Join(names, ", "))
}

// prefixOf converts a netlink address into its configured prefix.
func prefixOf(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap()
	ones, _ := a.Mask.Size()
	return netip.PrefixFrom(ip, ones), true
}

// AddAddress puts vip on iface as a host address without a prefix route
// (and without DAD for IPv6, so it is usable at once), marked as ours.
// An address that is already there is not an error.
func AddAddress(iface string, vip netip.Addr) error {
	_, err := addAddress(&netlink.Handle{}, iface, vip)
	return err
}

// addAddress adds vip and reports whether the kernel did not have it before.
func addAddress(h *netlink.Handle, iface string, vip netip.Addr) (bool, error) {
	vip, err := normalize(vip)
	if err != nil {
		return false, fmt.Errorf("add VIP to %q: %w", iface, err)
	}
	link, err := h.LinkByName(iface)
	if err != nil {
		return false, fmt.Errorf("add VIP %s: interface %q: %w", vip, iface, err)
	}
	return addAddressOn(h, link, iface, vip)
}

// addAddressOn is addAddress on a link already looked up; vip is normalised.
func addAddressOn(h *netlink.Handle, link netlink.Link, iface string, vip netip.Addr) (bool, error) {
	err := h.AddrAdd(link, vipNetlinkAddr(iface, vip))
	if errors.Is(err, unix.EEXIST) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("add VIP %s to %q: %w", vip, iface, err)
	}
	addressesAdded.WithLabelValues(familyName(vip)).Inc()
	return true, nil
}

// RemoveAddress takes vip off iface. An address that is already gone is not
// an error.
func RemoveAddress(iface string, vip netip.Addr) error {
	_, err := removeAddress(&netlink.Handle{}, iface, vip)
	return err
}

// removeAddress deletes vip and reports whether the kernel had it.
func removeAddress(h *netlink.Handle, iface string, vip netip.Addr) (bool, error) {
	vip, err := normalize(vip)
	if err != nil {
		return false, fmt.Errorf("remove VIP from %q: %w", iface, err)
	}
	link, err := h.LinkByName(iface)
	if err != nil {
		return false, fmt.Errorf("remove VIP %s: interface %q: %w", vip, iface, err)
	}
	return removeAddressOn(h, link, vip)
}

// removeAddressOn is removeAddress on a link already looked up (by index when
// the interface was renamed); vip is normalised.
func removeAddressOn(h *netlink.Handle, link netlink.Link, vip netip.Addr) (bool, error) {
	iface := link.Attrs().Name
	// Match on address and prefix length only: the kernel also compares a
	// label when one is given, and a VIP must go even if someone relabelled it.
	del := vipNetlinkAddr(iface, vip)
	del.Label = ""
	err := h.AddrDel(link, del)
	if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("remove VIP %s from %q: %w", vip, iface, err)
	}
	addressesRemoved.WithLabelValues(familyName(vip)).Inc()
	return true, nil
}

// ListVIPAddresses returns the addresses on iface that carry our VIP marks,
// sorted, so a restarted agent can find what an earlier run left behind.
func ListVIPAddresses(iface string) ([]netip.Addr, error) {
	return listVIPAddresses(&netlink.Handle{}, iface)
}

func listVIPAddresses(h *netlink.Handle, iface string) ([]netip.Addr, error) {
	link, err := h.LinkByName(iface)
	if err != nil {
		return nil, fmt.Errorf("list VIPs: interface %q: %w", iface, err)
	}
	addrs, err := addrList(h, link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list VIPs: addresses of %q: %w", iface, err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if !isOurs(iface, a) {
			continue
		}
		if p, ok := prefixOf(a); ok {
			out = append(out, p.Addr())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}
