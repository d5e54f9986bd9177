package vip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
)

// linkState is what the Holder last saw of the interface it follows by name.
type linkState struct {
	// index is the link that carried the name; 0 while no link has it.
	index int
	up    bool
}

// Repair is what one Reconcile pass found on the interface and changed.
type Repair struct {
	// Readded are held VIPs that were missing from the interface (deleted by
	// someone, flushed by a link flap, or on a recreated interface), put back.
	Readded []netip.Addr
	// Removed are addresses with our marks that the Holder does not hold, and
	// held VIPs taken off a link that was renamed away from the interface name.
	Removed []netip.Addr
	// Announced are the VIPs the pass announced: the re-added ones, or every
	// held one when the link came up or a new link took the interface name.
	Announced []netip.Addr
	// Up is whether a link of the interface name exists and can carry
	// announcements; Changed is whether that differs from the previous pass.
	Up, Changed bool
}

// linkUsable is whether a link can carry announcements: administratively up
// and operationally up, or "unknown" as dummy and some virtual drivers report.
func linkUsable(a *netlink.LinkAttrs) bool {
	if a == nil || a.Flags&net.FlagUp == 0 {
		return false
	}
	return a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown
}

// plan is the pure core of a pass over one interface: the VIPs in want that
// the kernel's address list lacks, and the addresses carrying our marks that
// are not in keep. An address without our marks is never listed. Both come
// back sorted.
func plan(iface string, want, keep map[netip.Addr]bool, kernel []netlink.Addr) (missing, stray []netip.Addr) {
	present := make(map[netip.Addr]bool, len(kernel))
	for _, a := range kernel {
		if !isOurs(iface, a) {
			continue
		}
		p, ok := prefixOf(a)
		if !ok {
			continue
		}
		present[p.Addr()] = true
		if !keep[p.Addr()] {
			stray = append(stray, p.Addr())
		}
	}
	for v := range want {
		if !present[v] {
			missing = append(missing, v)
		}
	}
	slices.SortFunc(missing, netip.Addr.Compare)
	slices.SortFunc(stray, netip.Addr.Compare)
	return missing, stray
}

// Reconcile makes the kernel match what the Holder holds, on the link that
// now has the interface name: it puts back held VIPs that are missing,
// removes addresses with our marks that are not held (never any other
// address), takes held VIPs off a link renamed away from the name, and
// announces what it put back, or everything held when the link came up or a
// new link took the name. A VIP whose lease ran out or that the entitlement
// check refuses is not put back. Watch calls it; the daemon need not.
func (h *Holder) Reconcile() (Repair, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return Repair{}, ErrClosed
	}
	return h.reconcile(time.Now())
}

// reconcile is Reconcile with h.mu held.
func (h *Holder) reconcile(now time.Time) (Repair, error) {
	var (
		r    Repair
		errs []error
	)
	link, err := h.nl.LinkByName(h.iface)
	var notFound netlink.LinkNotFoundError
	if err != nil && !errors.As(err, &notFound) {
		return r, fmt.Errorf("reconcile %q: %w", h.iface, err)
	}
	idx := 0
	if err == nil {
		idx = link.Attrs().Index
	}
	if h.link.index != 0 && idx != h.link.index {
		removed, err := h.leaveLink(h.link.index)
		r.Removed = append(r.Removed, removed...)
		errs = append(errs, err)
		h.ann.reset()
		h.logger.Warn("interface name now on another link, or gone: following the name", "old_index", h.link.index, "new_index", idx)
	}
	up := idx != 0 && linkUsable(link.Attrs())
	wentUp := up && (!h.link.up || idx != h.link.index)
	r.Up, r.Changed = up, up != h.link.up
	h.link = linkState{index: idx, up: up}
	h.linkIndex.Store(int64(idx))
	if idx == 0 {
		return r, errors.Join(errs...)
	}
	addrs, err := addrList(h.nl, link, netlink.FAMILY_ALL)
	if err != nil {
		return r, errors.Join(append(errs, fmt.Errorf("reconcile %q: list addresses: %w", h.iface, err))...)
	}
	want, keep := h.wanted(now)
	missing, stray := plan(h.iface, want, keep, addrs)
	for _, v := range stray {
		if _, err := removeAddressOn(h.nl, link, v); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(h.held, v)
		h.logger.Warn("removed an address with raftvip's marks that this node does not hold", "vip", v)
		r.Removed = append(r.Removed, v)
	}
	for _, v := range missing {
		added, err := addAddressOn(h.nl, link, h.iface, v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if added {
			h.logger.Warn("held VIP was missing from the interface, added it again", "vip", v)
			r.Readded = append(r.Readded, v)
		}
	}
	announce := r.Readded
	if wentUp {
		announce = sortedKeys(want)
		h.logger.Info("interface is up: announcing every held VIP", "vips", len(announce))
	}
	if up && len(announce) > 0 {
		sent, err := h.announceAnew(announce)
		errs = append(errs, err)
		r.Announced = sent
	}
	h.updateGauge()
	return r, errors.Join(errs...)
}

// wanted splits the held VIPs: keep are all that are held and announced (not
// a failed removal), want those of them that may be on the interface now,
// within their lease and entitled. h.mu must be held.
func (h *Holder) wanted(now time.Time) (want, keep map[netip.Addr]bool) {
	want = make(map[netip.Addr]bool, len(h.held))
	keep = make(map[netip.Addr]bool, len(h.held))
	for v, gen := range h.held {
		if gen == 0 {
			continue
		}
		keep[v] = true
		if now.Before(h.expires[v]) && (h.entitled == nil || h.entitled(v)) {
			want[v] = true
		}
	}
	return want, keep
}

// leaveLink takes the held VIPs off the link with index, which no longer has
// the interface name: renamed, it would go on answering for them. Only host
// addresses with our flags that the Holder holds are touched; a link that is
// gone took its addresses with it. h.mu must be held.
func (h *Holder) leaveLink(index int) ([]netip.Addr, error) {
	old, err := h.nl.LinkByIndex(index)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("interface %q: link %d it had: %w", h.iface, index, err)
	}
	addrs, err := addrList(h.nl, old, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("interface %q: addresses of link %q it was renamed to: %w", h.iface, old.Attrs().Name, err)
	}
	var (
		removed []netip.Addr
		errs    []error
	)
	for _, a := range addrs {
		p, ok := prefixOf(a)
		if !ok || p.Bits() != p.Addr().BitLen() || a.Flags&vipFlags(p.Addr()) != vipFlags(p.Addr()) {
			continue
		}
		if _, held := h.held[p.Addr()]; !held {
			continue
		}
		if _, err := removeAddressOn(h.nl, old, p.Addr()); err != nil {
			errs = append(errs, err)
			continue
		}
		h.logger.Warn("took a held VIP off the link renamed away from the interface name", "vip", p.Addr(), "renamed_to", old.Attrs().Name)
		removed = append(removed, p.Addr())
	}
	return removed, errors.Join(errs...)
}

// announceAnew holds vips under a new generation and announces them now and
// after each of followUpDelays, as for a VIP just taken; it returns those the
// entitlement check let through. h.mu must be held.
func (h *Holder) announceAnew(vips []netip.Addr) ([]netip.Addr, error) {
	h.gen++
	for _, v := range vips {
		h.held[v] = h.gen
	}
	sent, err := h.announce(vips)
	if len(sent) > 0 {
		h.followUp(sent, h.gen)
	}
	return sent, err
}

// Reannounce announces again, as if just taken, those of vips that are held
// within their lease: for the daemon when the replicated state moved a VIP
// away and back to this node between two of its passes, so Set saw no change
// but the segment may have learnt the other node meanwhile.
func (h *Holder) Reannounce(vips []netip.Addr) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	want, _ := h.wanted(time.Now())
	var again []netip.Addr
	for _, v := range vips {
		if n, err := normalize(v); err == nil && want[n] {
			again = append(again, n)
		}
	}
	if len(again) == 0 {
		return nil
	}
	h.logger.Info("VIP moved away and back between two passes: announcing it again", "vips", again)
	_, err := h.announceAnew(again)
	return err
}
