package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// A Holder replaces only its own fence tables at start (Fence.Install). Tables
// of an interface this run no longer announces on (a pool's interface changed,
// or --interface went away) would stay forever, and since the rules match
// addresses on every interface, they would keep dropping ARP, NDP and traffic
// for their VIPs wherever those VIPs are announced now. RemoveStaleFences
// removes them.

// staleFenceTables is the pure decision: which of the tables found are fence
// tables (FenceTable, or FenceTable-SOMETHING) that no Holder of this run owns
// (keep), sorted and without repeats (each name exists in two families).
func staleFenceTables(found, keep []string) []string {
	var out []string
	for _, name := range found {
		ours := name == FenceTable || strings.HasPrefix(name, FenceTable+"-")
		if !ours || slices.Contains(keep, name) || slices.Contains(out, name) {
			continue
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// RemoveStaleFences deletes, in network namespace ns, the fence tables that no
// Holder of this run owns (keep names the tables the Holders use), and returns
// their names. Before a table goes, every address with our VIP marks whose IP
// it fences is removed from every link: an earlier run's address that the
// table kept silent must not start answering. Call it at start, after the
// Holders have installed their own fences and before any VIP is held.
func RemoveStaleFences(ns netns.NsHandle, keep []string) ([]string, error) {
	conn, err := nftablesIn(ns)
	if err != nil {
		return nil, fmt.Errorf("stale fences: nftables: %w", err)
	}
	var found []string
	tables := map[string][]*nftables.Table{}
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyARP, nftables.TableFamilyINet} {
		ts, err := conn.ListTablesOfFamily(fam)
		if err != nil {
			return nil, fmt.Errorf("stale fences: list tables: %w", err)
		}
		for _, t := range ts {
			found = append(found, t.Name)
			tables[t.Name] = append(tables[t.Name], t)
		}
	}
	stale := staleFenceTables(found, keep)
	if len(stale) == 0 {
		return nil, nil
	}
	fenced := map[netip.Addr]bool{}
	for _, name := range stale {
		for _, t := range tables[name] {
			for _, set := range []string{"vips4", "vips6"} {
				s, err := conn.GetSetByName(t, set)
				if err != nil {
					continue // this family's table has no such set
				}
				elems, err := conn.GetSetElements(s)
				if err != nil {
					return nil, fmt.Errorf("stale fences: read %s %s: %w", name, set, err)
				}
				for _, e := range elems {
					if a, ok := netip.AddrFromSlice(e.Key); ok {
						fenced[a.Unmap()] = true
					}
				}
			}
		}
	}
	if err := removeFencedAddresses(ns, fenced); err != nil {
		return nil, err
	}
	for _, name := range stale {
		for _, t := range tables[name] {
			conn.DelTable(t)
		}
	}
	if err := conn.Flush(); err != nil {
		return nil, fmt.Errorf("stale fences: delete %v: %w", stale, err)
	}
	return stale, nil
}

// removeFencedAddresses takes every address with our VIP marks whose IP is in
// fenced off every link of ns.
func removeFencedAddresses(ns netns.NsHandle, fenced map[netip.Addr]bool) error {
	if len(fenced) == 0 {
		return nil
	}
	h, err := netlinkIn(ns)
	if err != nil {
		return fmt.Errorf("stale fences: netlink: %w", err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("stale fences: list links: %w", err)
	}
	var errs []error
	for _, link := range links {
		addrs, err := addrList(h, link, netlink.FAMILY_ALL)
		if err != nil {
			errs = append(errs, fmt.Errorf("stale fences: addresses of %q: %w", link.Attrs().Name, err))
			continue
		}
		for _, a := range addrs {
			p, ok := prefixOf(a)
			if !ok || !isOurs(link.Attrs().Name, a) || !fenced[p.Addr()] {
				continue
			}
			if _, err := removeAddressOn(h, link, p.Addr()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
