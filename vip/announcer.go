package vip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netns"
)

// Burst shape of one Announce call: a few packets a few milliseconds apart so
// that one lost frame does not leave the segment pointing at the old owner.
const (
	burstCount   = 3
	burstSpacing = 2 * time.Millisecond
)

// ErrClosed is returned by an Announcer or Holder used after Close.
var ErrClosed = errors.New("vip: closed")

// sender writes one announcement of a VIP and reports how many packets it sent.
type sender interface {
	send(vip netip.Addr) (int, error)
	close() error
}

// Announcer tells the L2 segment that this node now answers for a VIP. It
// keeps one ARP and one ICMPv6 socket per interface, opened once (raw sockets
// are costly), in the network namespace that was current when it was made,
// and reopens a socket after a send error (the interface may have been
// recreated). It is safe for concurrent use.
type Announcer struct {
	iface  string
	logger *slog.Logger
	ns     netns.NsHandle

	mu     sync.Mutex
	arp    sender
	ndp    sender
	closed bool
}

// NewAnnouncer opens the announcement sockets for iface in the current
// network namespace. A socket that cannot be opened yet (no IPv6 in the
// kernel, say) is retried on the first announcement that needs it; a missing
// interface is an error.
func NewAnnouncer(iface string, logger *slog.Logger) (*Announcer, error) {
	if logger == nil {
		logger = slog.Default()
	}
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("announcer for %q: current network namespace: %w", iface, err)
	}
	a := &Announcer{iface: iface, logger: logger.With("interface", iface), ns: ns}
	err = inNamespace(ns, func() error {
		if _, err := net.InterfaceByName(iface); err != nil {
			return fmt.Errorf("announcer: interface %q: %w", iface, err)
		}
		return nil
	})
	if err != nil {
		_ = ns.Close()
		return nil, err
	}
	for _, v4 := range []bool{true, false} {
		if _, err := a.sender(v4); err != nil {
			a.logger.Debug("announcement socket not open yet", "ipv4", v4, "err", err)
		}
	}
	return a, nil
}

// sender returns the open sender for a family, opening it if needed.
// a.mu must be held (or a not yet shared).
func (a *Announcer) sender(v4 bool) (sender, error) {
	if v4 && a.arp != nil {
		return a.arp, nil
	}
	if !v4 && a.ndp != nil {
		return a.ndp, nil
	}
	var s sender
	err := inNamespace(a.ns, func() error {
		ifi, err := net.InterfaceByName(a.iface)
		if err != nil {
			return fmt.Errorf("interface %q: %w", a.iface, err)
		}
		if v4 {
			s, err = openARP(ifi)
		} else {
			s, err = openNDP(ifi)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if v4 {
		a.arp = s
	} else {
		a.ndp = s
	}
	return s, nil
}

// drop closes and forgets the sender of a family after a failed send.
func (a *Announcer) drop(v4 bool) {
	p := &a.ndp
	if v4 {
		p = &a.arp
	}
	if *p != nil {
		if err := (*p).close(); err != nil {
			a.logger.Debug("close announcement socket", "err", err)
		}
		*p = nil
	}
}

// reset closes both sockets, for the Holder to call when the interface of
// its name is a different link than before (recreated, or another one renamed
// to it): the sockets are bound to the old link's index.
func (a *Announcer) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.drop(true)
	a.drop(false)
}

// sendOnce writes one round for vip, reopening the socket once on failure.
func (a *Announcer) sendOnce(vip netip.Addr) (int, error) {
	var lastErr error
	for range 2 {
		s, err := a.sender(vip.Is4())
		if err != nil {
			return 0, err
		}
		n, err := s.send(vip)
		if err == nil {
			return n, nil
		}
		lastErr = err
		a.drop(vip.Is4())
	}
	return 0, lastErr
}

// Announce sends one burst for vip: gratuitous ARP in request and reply form
// for IPv4, an unsolicited override Neighbor Advertisement to ff02::1 for
// IPv6, burstCount rounds burstSpacing apart. The VIP should already be on
// the interface (IPv6 advertisements are sourced from it).
func (a *Announcer) Announce(vip netip.Addr) error {
	return a.AnnounceBatch([]netip.Addr{vip})
}

// AnnounceBatch sends one burst for each of vips, interleaved: every round
// covers all of them, so a node taking over a hundred service VIPs at once
// is done as quickly as one taking a single VIP. Each round starts at a
// different VIP. A VIP whose send fails is left out of later rounds; the
// errors of all failed VIPs are joined.
func (a *Announcer) AnnounceBatch(vips []netip.Addr) error {
	var (
		errs  []error
		valid []netip.Addr
	)
	for _, v := range vips {
		n, err := normalize(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("announce %s on %q: %w", v, a.iface, err))
			continue
		}
		valid = append(valid, n)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	failed := map[netip.Addr]bool{}
	packets := map[string]int{}
	for round := range burstCount {
		if len(failed) == len(valid) {
			break
		}
		if round > 0 {
			time.Sleep(burstSpacing)
		}
		// Start each round at a different VIP: should a receiver or queue
		// drop the tail of a long round, a different tail goes missing.
		off := round * len(valid) / burstCount
		for k := range valid {
			vip := valid[(off+k)%len(valid)]
			if failed[vip] {
				continue
			}
			n, err := a.sendOnce(vip)
			packets[familyName(vip)] += n
			if err != nil {
				failed[vip] = true
				errs = append(errs, fmt.Errorf("announce %s on %q: %w", vip, a.iface, err))
			}
		}
	}
	for fam, n := range packets {
		announcementPackets.WithLabelValues(fam).Add(float64(n))
	}
	for _, vip := range valid {
		if failed[vip] {
			announceErrors.WithLabelValues(familyName(vip)).Inc()
			continue
		}
		announcements.WithLabelValues(familyName(vip)).Inc()
		a.logger.Debug("announced VIP", "vip", vip)
	}
	return errors.Join(errs...)
}

// Close releases the sockets. Announce after Close returns ErrClosed.
func (a *Announcer) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	var errs []error
	for _, s := range []sender{a.arp, a.ndp} {
		if s != nil {
			errs = append(errs, s.close())
		}
	}
	a.arp, a.ndp = nil, nil
	errs = append(errs, a.ns.Close())
	return errors.Join(errs...)
}
