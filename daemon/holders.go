package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/raftvip/raftvip/vip"
	"github.com/vishvananda/netns"
)

// openHolders makes a vip.Holder for every interface this node announces on in
// L2 mode (announceLinks): each drops the addresses an earlier run left, then
// installs its kernel fence. The caller closes them.
func openHolders(cfg *Parsed, log *slog.Logger) (map[string]*vip.Holder, error) {
	out := map[string]*vip.Holder{}
	closeAll := func() {
		for _, h := range out {
			_ = h.Close()
		}
	}
	var tables []string
	for _, iface := range announceLinks(cfg.Interface, cfg.Pools) {
		h, err := openHolder(cfg, iface, log)
		if err != nil {
			closeAll()
			return nil, err
		}
		out[iface] = h
		tables = append(tables, fenceTable(iface, cfg.Interface))
	}
	if err := removeStaleFences(tables, log); err != nil {
		if len(out) == 0 {
			// Nothing announced here, so nothing needs nftables: a node without
			// it still runs, as before there were fences.
			log.Warn("could not check for kernel fence tables of an earlier run", "err", err)
			return out, nil
		}
		closeAll()
		return nil, err
	}
	return out, nil
}

// removeStaleFences deletes the fence tables of interfaces this run does not
// announce on (vip.RemoveStaleFences), keeping tables; it runs before any VIP is
// held, in both modes (a node moved from L2 to BGP mode keeps no fence).
func removeStaleFences(tables []string, log *slog.Logger) error {
	ns, err := netns.Get()
	if err != nil {
		return fmt.Errorf("kernel fence: this network namespace: %w", err)
	}
	defer ns.Close()
	removed, err := vip.RemoveStaleFences(ns, tables)
	if err != nil {
		return fmt.Errorf("kernel fence: remove the tables of interfaces no longer announced on: %w", err)
	}
	if len(removed) > 0 {
		log.Warn("removed kernel fence tables of interfaces this run does not announce on, and the VIP addresses they fenced", "tables", removed)
	}
	return nil
}

// flagFor names where an interface came from, for errors an operator can act on.
func flagFor(cfg *Parsed, iface string) string {
	if iface == cfg.Interface {
		return fmt.Sprintf("--interface %q", iface)
	}
	return fmt.Sprintf("--pool interface=%s", iface)
}

func openHolder(cfg *Parsed, iface string, log *slog.Logger) (*vip.Holder, error) {
	h, err := vip.NewHolder(iface, log)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagFor(cfg, iface), err)
	}
	// Nothing is ours before Raft says so: addresses left by an earlier crash go now.
	stale, err := h.CleanupStale(nil)
	if err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("%s: remove stale VIPs: %w", flagFor(cfg, iface), err)
	}
	if len(stale) > 0 {
		log.Warn("removed VIPs left on the interface by an earlier run", "interface", iface, "vips", stale)
	}
	// Only now that stale addresses are gone may the old run's fence go.
	table := fenceTable(iface, cfg.Interface)
	leftover, err := h.EnableFenceTable(table)
	if err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("%s: kernel fence (nftables, needs CAP_NET_ADMIN): %w", flagFor(cfg, iface), err)
	}
	log.Info("kernel fence installed", "interface", iface, "table", table, "replaced_leftover", leftover,
		"control_plane_lease", cfg.Raft.LeaderLease, "service_lease", cfg.FenceTimeout)
	return h, nil
}

// heldVIPs is every VIP on any of this node's Holders, sorted.
func (d *Daemon) heldVIPs() []netip.Addr {
	var out []netip.Addr
	for _, h := range d.holders {
		out = append(out, h.Held()...)
	}
	return sortedAddrs(out)
}

// holderNames are the interfaces with a Holder, sorted, for a stable order of work.
func (d *Daemon) holderNames() []string {
	out := make([]string, 0, len(d.holders))
	for n := range d.holders {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// setHolders makes each Holder carry the VIPs of its interface (vipLinks) with
// their leases, and returns the VIPs that belong on an interface this node has
// no Holder for, which it cannot announce.
func (d *Daemon) setHolders(byLink map[string][]netip.Addr, now time.Time, cpTTL, svcTTL time.Duration) ([]netip.Addr, error) {
	var errs []error
	for _, name := range d.holderNames() {
		if err := d.holders[name].Set(leasesFor(byLink[name], d.cfg.VIPs, now, cpTTL, svcTTL)); err != nil {
			errs = append(errs, fmt.Errorf("interface %s: %w", name, err))
		}
	}
	var homeless []netip.Addr
	for name, vips := range byLink {
		if _, ok := d.holders[name]; !ok {
			homeless = append(homeless, vips...)
		}
	}
	return sortedAddrs(homeless), errors.Join(errs...)
}

// reannounce sends a burst for VIPs that came back, each on its interface.
func (d *Daemon) reannounce(byLink map[string][]netip.Addr) error {
	var errs []error
	for _, name := range d.holderNames() {
		if vips := byLink[name]; len(vips) > 0 {
			errs = append(errs, d.holders[name].Reannounce(vips))
		}
	}
	return errors.Join(errs...)
}

// removeAllHolders takes every VIP off and removes the fences, for a graceful stop.
func (d *Daemon) removeAllHolders() error {
	var errs []error
	for _, name := range d.holderNames() {
		if err := d.holders[name].RemoveAll(); err != nil {
			errs = append(errs, fmt.Errorf("interface %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// describeAddrs prints addresses for a log line that compares with the last one.
func describeAddrs(a []netip.Addr) string {
	s := make([]string, len(a))
	for i, x := range a {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}
