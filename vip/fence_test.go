package vip

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/raftvip/raftvip/test/lab"
	"github.com/vishvananda/netns"
)

// fencedHolder makes a Holder with the kernel fence for eth0 inside node i.
func fencedHolder(t *testing.T, l *lab.Lab, i int) (*Holder, bool) {
	t.Helper()
	var (
		h        *Holder
		leftover bool
	)
	inNS(t, l, l.Node(i), func() error {
		var err error
		if h, err = NewHolder(lab.Iface, slog.New(slog.DiscardHandler)); err != nil {
			return err
		}
		leftover, err = h.EnableFence()
		return err
	})
	return h, leftover
}

// answers reports whether the client gets an answer for vip: an ARP reply for
// IPv4, a neighbour advertisement (seen as a ping reply after the client forgot
// the neighbour) for IPv6.
func answers(l *lab.Lab, vip netip.Addr) error {
	if vip.Is4() {
		_, err := l.Exec(l.Client(), "arping", "-q", "-c", "2", "-w", "1", "-i", lab.Iface, vip.String())
		return err
	}
	if _, err := l.Exec(l.Client(), "ip", "-6", "neigh", "flush", "to", vip.String()); err != nil {
		return err
	}
	_, err := l.Exec(l.Client(), "ping", "-6", "-c", "1", "-W", "1", vip.String())
	return err
}

// leasesFrom gives every VIP a lease of ttl from now.
func leasesFrom(ttl time.Duration, vips ...netip.Addr) []Lease {
	out := make([]Lease, len(vips))
	for i, v := range vips {
		out[i] = Lease{VIP: v, Until: time.Now().Add(ttl)}
	}
	return out
}

// renew keeps leases of ttl current every 20 ms for d, as the announce loop does.
func renew(t *testing.T, h *Holder, d, ttl time.Duration, vips ...netip.Addr) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if err := h.Set(leasesFrom(ttl, vips...)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFenceSilencesAnExpiredLease(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1)
	h, leftover := fencedHolder(t, l, 0)
	defer h.Close()
	if leftover {
		t.Fatal("a fresh namespace reported leftover fence tables")
	}
	const ttl = 300 * time.Millisecond
	renew(t, h, 100*time.Millisecond, ttl, vip4, vip6)
	for _, v := range []netip.Addr{vip4, vip6} {
		lab.Eventually(t, 10*time.Second, "the client reaches "+v.String()+" while the lease is renewed", func() error {
			if err := h.Set(leasesFrom(ttl, vip4, vip6)); err != nil {
				return err
			}
			return answers(l, v)
		})
	}

	// The agent stops renewing (as a frozen or killed one would): once the TTL
	// passes the addresses are still on the interface, but the node is silent.
	capture := l.Capture(l.Client(), lab.Iface, "arp or icmp6")
	time.Sleep(400 * time.Millisecond)
	fencedAt := time.Now()
	for _, v := range []netip.Addr{vip4, vip6} {
		if err := answers(l, v); err == nil {
			t.Errorf("%s answered after its lease expired", v)
		}
	}
	lines := capture.Stop()
	for _, v := range []netip.Addr{vip4, vip6} {
		if cs := lab.Claims(lines, v); len(cs) != 0 {
			t.Errorf("node claimed %s after its lease expired: %s", v, cs[0].Line)
		}
	}
	if got := listVIPs(t, l, 0); len(got) != 2 {
		t.Fatalf("the fence must not remove addresses; the interface has %v", got)
	}
	// Only the VIPs are fenced: the node's own address still answers.
	if _, err := l.Exec(l.Client(), "ping", "-c", "1", "-W", "1", l.NodeIP(0).String()); err != nil {
		t.Errorf("the node's own address stopped answering: %v", err)
	}
	t.Logf("silent within %s of the last renewal", time.Since(fencedAt)+400*time.Millisecond)

	// A renewal brings it back.
	for _, v := range []netip.Addr{vip4, vip6} {
		lab.Eventually(t, 10*time.Second, v.String()+" answers again after a renewal", func() error {
			if err := h.Set(leasesFrom(ttl, vip4, vip6)); err != nil {
				return err
			}
			return answers(l, v)
		})
	}
	if err := h.RemoveAll(); err != nil {
		t.Fatal(err)
	}
}

func TestFenceLeftoverTablesReplacedAndRemoved(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1, lab.WithoutIPv6())
	h, _ := fencedHolder(t, l, 0)
	renew(t, h, 50*time.Millisecond, time.Hour, vip4)
	// A crash: the process goes, its addresses and tables stay.
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := answers(l, vip4); err != nil {
		t.Fatalf("with an hour-long lease the VIP should still answer: %v", err)
	}
	var h2 *Holder
	inNS(t, l, l.Node(0), func() error {
		var err error
		h2, err = NewHolder(lab.Iface, slog.New(slog.DiscardHandler))
		return err
	})
	defer h2.Close()
	// The start-up order of the daemon: stale addresses first, then the fence.
	var stale []netip.Addr
	inNS(t, l, l.Node(0), func() error {
		var err error
		stale, err = h2.CleanupStale(nil)
		return err
	})
	if len(stale) != 1 || stale[0] != vip4 {
		t.Fatalf("CleanupStale removed %v, want [%s]", stale, vip4)
	}
	leftover, err := h2.EnableFence()
	if err != nil || !leftover {
		t.Fatalf("EnableFence after a crash: leftover %v, %v; want true", leftover, err)
	}
	if out := ruleset(t, l); strings.Contains(out, vip4.String()) {
		t.Fatalf("the replaced tables still hold the crashed run's VIP:\n%s", out)
	}
	if err := h2.RemoveAll(); err != nil {
		t.Fatal(err)
	}
	if out := ruleset(t, l); strings.Contains(out, FenceTable) {
		t.Fatalf("a graceful stop left the fence tables:\n%s", out)
	}
}

// eachFenceElement calls fn for every table named FenceTable in node 0 and for
// every element of its sets, read through the library rather than the nft tool.
func eachFenceElement(t *testing.T, l *lab.Lab, table func(tb *nftables.Table), fn func(set string, e nftables.SetElement)) {
	t.Helper()
	inNS(t, l, l.Node(0), func() error {
		ns, err := netns.Get()
		if err != nil {
			return err
		}
		defer ns.Close()
		f, err := NewFenceAt(ns)
		if err != nil {
			return err
		}
		defer f.Close()
		tables, err := f.conn.ListTables()
		if err != nil {
			return err
		}
		for _, tb := range tables {
			if tb.Name != FenceTable {
				continue
			}
			table(tb)
			sets, err := f.conn.GetSets(tb)
			if err != nil {
				return err
			}
			for _, s := range sets {
				els, err := f.conn.GetSetElements(s)
				if err != nil {
					return err
				}
				for _, e := range els {
					fn(s.Name, e)
				}
			}
		}
		return nil
	})
}

// ruleset describes node 0's nftables tables named FenceTable and their set
// elements.
func ruleset(t *testing.T, l *lab.Lab) string {
	t.Helper()
	var b strings.Builder
	eachFenceElement(t, l, func(tb *nftables.Table) { fmt.Fprintf(&b, "table %d %s\n", tb.Family, tb.Name) },
		func(set string, e nftables.SetElement) {
			a, _ := netip.AddrFromSlice(e.Key)
			fmt.Fprintf(&b, "  %s %s\n", set, a)
		})
	return b.String()
}

func TestFenceWriteBeforeInstall(t *testing.T) {
	var f Fence
	err := f.Write(nil, nil)
	if err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Fatalf("Write on an uninstalled fence: %v", err)
	}
}
