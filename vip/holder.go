package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// followUpDelays are the re-announcements after a VIP is taken, measured from
// the first burst: they cover frames lost while a switch or a peer was busy.
var followUpDelays = []time.Duration{100 * time.Millisecond, time.Second}

// Holder makes one interface carry exactly the VIPs this node should hold.
// The daemon calls Set with what the FSM says the node owns; the Holder adds
// and announces the new ones, re-announces them shortly after, and removes
// the rest. The kernel answers ARP and Neighbor Solicitations for addresses on
// the interface, so nothing here listens. A Holder acts in the network
// namespace that was current when it was made and is safe for concurrent use.
type Holder struct {
	iface  string
	logger *slog.Logger
	ns     netns.NsHandle
	nl     *netlink.Handle
	ann    *Announcer
	// fence is the kernel-side lease; nil until EnableFence (BGP mode and
	// unit tests run without one).
	fence *Fence

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	// held maps each held VIP to the generation of the take that announced
	// it; follow-ups only re-announce a VIP still held under their
	// generation. 0 marks a VIP whose removal failed (held, not announced).
	held map[netip.Addr]uint64
	// expires is when each wanted VIP's lease ends (monotonic): nothing is
	// announced for a VIP past it, so a follow-up that fires after the agent
	// was frozen does not speak for a VIP another node may hold by now.
	expires map[netip.Addr]time.Time
	gen     uint64
	closed  bool
	// entitled is asked right before every announcement (entitled.go).
	entitled Entitled
	// link is the interface as the last Reconcile saw it; linkIndex mirrors its
	// index for Watch to filter notifications without the lock.
	link      linkState
	linkIndex atomic.Int64
}

// NewHolder prepares a Holder for iface in the current network namespace. It
// takes no address; call CleanupStale to drop leftovers of an earlier run.
func NewHolder(iface string, logger *slog.Logger) (*Holder, error) {
	if logger == nil {
		logger = slog.Default()
	}
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("holder for %q: current network namespace: %w", iface, err)
	}
	nl, err := netlinkIn(ns)
	if err != nil {
		_ = ns.Close()
		return nil, fmt.Errorf("holder for %q: netlink: %w", iface, err)
	}
	ann, err := NewAnnouncer(iface, logger)
	if err != nil {
		nl.Close()
		_ = ns.Close()
		return nil, err
	}
	link, err := nl.LinkByName(iface)
	if err != nil {
		_ = ann.Close()
		nl.Close()
		_ = ns.Close()
		return nil, fmt.Errorf("holder for %q: %w", iface, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Holder{
		iface:   iface,
		logger:  logger.With("interface", iface),
		ns:      ns,
		nl:      nl,
		ann:     ann,
		ctx:     ctx,
		cancel:  cancel,
		held:    map[netip.Addr]uint64{},
		expires: map[netip.Addr]time.Time{},
		link:    linkState{index: link.Attrs().Index, up: linkUsable(link.Attrs())},
	}
	h.linkIndex.Store(int64(h.link.index))
	return h, nil
}

// Set makes the interface carry exactly the VIPs in desired. VIPs not in
// desired are removed first; new VIPs are then added and announced together
// at once, and again after each of followUpDelays. A VIP already held is not
// looked up in the kernel again: Reconcile (run by Watch) repairs what someone
// else changed. With a
// fence, every lease is renewed until its Until, and a new VIP is fenced before
// its address goes on: if the fence cannot be written, nothing is added. Errors
// for single VIPs are joined; the others are still handled.
func (h *Holder) Set(desired []Lease) error {
	var errs []error
	want := make(map[netip.Addr]time.Time, len(desired))
	for _, d := range desired {
		n, err := normalize(d.VIP)
		if err != nil {
			errs = append(errs, fmt.Errorf("VIP %s on %q: %w", d.VIP, h.iface, err))
			continue
		}
		if until, ok := want[n]; !ok || d.Until.Before(until) {
			want[n] = d.Until
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	leases := make([]Lease, 0, len(want))
	clear(h.expires)
	for _, vip := range sortedKeys(want) {
		leases = append(leases, Lease{VIP: vip, Until: want[vip]})
		h.expires[vip] = want[vip]
	}
	fenced := true
	if h.fence != nil {
		onIface := sortedKeys(h.held)
		for vip := range want {
			if _, ok := h.held[vip]; !ok {
				onIface = append(onIface, vip)
			}
		}
		if err := h.fence.Write(onIface, leases); err != nil {
			errs = append(errs, err)
			fenced = false
		}
	}
	released := false
	for _, vip := range sortedKeys(h.held) {
		if _, ok := want[vip]; !ok {
			errs = append(errs, h.release(vip))
			released = true
		}
	}
	var fresh []netip.Addr
	for _, vip := range sortedKeys(want) {
		gen, had := h.held[vip]
		if (!had && !fenced) || (had && gen != 0) {
			continue
		}
		if err := h.take(vip); err != nil {
			errs = append(errs, err)
			continue
		}
		fresh = append(fresh, vip)
	}
	if len(fresh) > 0 {
		_, err := h.announceAnew(fresh)
		errs = append(errs, err)
	}
	if h.fence != nil && fenced && released {
		errs = append(errs, h.fence.Write(sortedKeys(h.held), leases))
	}
	h.updateGauge()
	return errors.Join(errs...)
}

// EnableFence installs the kernel-side lease (see Fence) in the Holder's
// network namespace, replacing tables an earlier run left, and reports whether
// there were any. Call it after CleanupStale, so leftover addresses stay silent
// until they are gone.
func (h *Holder) EnableFence() (leftover bool, err error) {
	return h.EnableFenceTable(FenceTable)
}

// EnableFenceTable is EnableFence with tables of the given name: a node that
// announces on several interfaces gives each Holder its own (NewFenceTableAt).
func (h *Holder) EnableFenceTable(table string) (leftover bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false, ErrClosed
	}
	f, err := NewFenceTableAt(h.ns, table)
	if err != nil {
		return false, err
	}
	if leftover, err = f.Leftover(); err == nil {
		err = f.Install()
	}
	if err != nil {
		_ = f.Close()
		return false, fmt.Errorf("interface %q: %w", h.iface, err)
	}
	h.fence = f
	return leftover, nil
}

// take puts vip on the interface for Set, which calls it for VIPs it does
// not hold yet (or whose removal failed); the caller announces them. h.mu must
// be held.
func (h *Holder) take(vip netip.Addr) error {
	added, err := addAddress(h.nl, h.iface, vip)
	if err != nil {
		return err
	}
	h.logger.Info("took VIP", "vip", vip, "added", added)
	return nil
}

// release removes vip. h.mu must be held. A VIP whose removal fails stays
// held, without announcements, so the next Set retries.
func (h *Holder) release(vip netip.Addr) error {
	if _, err := removeAddress(h.nl, h.iface, vip); err != nil {
		h.held[vip] = 0
		return err
	}
	delete(h.held, vip)
	h.logger.Info("released VIP", "vip", vip)
	return nil
}

// followUp re-announces vips after each of followUpDelays. It announces
// under h.mu and only the VIPs still held under gen, so a VIP is never
// announced after release took it off the interface.
func (h *Holder) followUp(vips []netip.Addr, gen uint64) {
	start := time.Now()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for _, d := range followUpDelays {
			t := time.NewTimer(time.Until(start.Add(d)))
			select {
			case <-h.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			h.mu.Lock()
			var still []netip.Addr
			now := time.Now()
			for _, vip := range vips {
				if g, ok := h.held[vip]; ok && g == gen && now.Before(h.expires[vip]) {
					still = append(still, vip)
				}
			}
			if len(still) > 0 && h.ctx.Err() == nil {
				var err error
				if still, err = h.announce(still); err != nil {
					h.logger.Warn("re-announce VIPs", "err", err)
				}
			}
			// A VIP not entitled at one follow-up is not announced at a later one.
			vips = still
			h.mu.Unlock()
			if len(still) == 0 {
				return
			}
		}
	}()
}

// AnnounceAll sends one burst for every held VIP, for the daemon to call when
// the link comes back up or the segment may have forgotten us.
func (h *Holder) AnnounceAll() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	var vips []netip.Addr
	now := time.Now()
	for _, vip := range sortedKeys(h.held) {
		if h.held[vip] != 0 && now.Before(h.expires[vip]) {
			vips = append(vips, vip)
		}
	}
	_, err := h.announce(vips)
	return err
}

// Held returns the VIPs the Holder currently holds, sorted.
func (h *Holder) Held() []netip.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	return sortedKeys(h.held)
}

// RemoveAll releases every held VIP and then removes the fence's tables, for a
// graceful stop.
func (h *Holder) RemoveAll() error {
	if err := h.Set(nil); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fence == nil {
		return nil
	}
	return h.fence.Remove()
}

// CleanupStale removes addresses carrying our VIP marks that are neither held
// nor in keep: leftovers of an earlier run that crashed or was killed. It
// returns what it removed.
func (h *Holder) CleanupStale(keep []netip.Addr) ([]netip.Addr, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	ours, err := listVIPAddresses(h.nl, h.iface)
	if err != nil {
		return nil, err
	}
	var (
		removed []netip.Addr
		errs    []error
	)
	for _, a := range ours {
		if _, ok := h.held[a]; ok || slices.Contains(keep, a) {
			continue
		}
		if _, err := removeAddress(h.nl, h.iface, a); err != nil {
			errs = append(errs, err)
			continue
		}
		h.logger.Info("removed stale VIP left by an earlier run", "vip", a)
		removed = append(removed, a)
	}
	return removed, errors.Join(errs...)
}

// Close stops re-announcements and releases sockets. It leaves the addresses
// on the interface: call RemoveAll first for a graceful stop.
func (h *Holder) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.cancel()
	h.mu.Unlock()
	h.wg.Wait()
	err := h.ann.Close()
	if h.fence != nil {
		err = errors.Join(err, h.fence.Close())
	}
	h.nl.Close()
	_ = h.ns.Close()
	h.dropGauge()
	return err
}

// updateGauge publishes the held count of this holder's interface per family
// (several holders run at once, one per pool interface). h.mu must be held.
func (h *Holder) updateGauge() {
	var v4, v6 float64
	for vip := range h.held {
		if vip.Is4() {
			v4++
		} else {
			v6++
		}
	}
	held.WithLabelValues(h.iface, "ipv4").Set(v4)
	held.WithLabelValues(h.iface, "ipv6").Set(v6)
}

// dropGauge removes this holder's series, so a closed holder (its interface
// left the configuration) leaves no count behind.
func (h *Holder) dropGauge() {
	held.DeleteLabelValues(h.iface, "ipv4")
	held.DeleteLabelValues(h.iface, "ipv6")
}

// sortedKeys returns the keys of m in address order.
func sortedKeys[V any](m map[netip.Addr]V) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
