package vip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/lab"
)

// watchEvery is the periodic reconcile of the tests' Watch: long, so that
// what the tests see is driven by the netlink notifications.
const watchEvery = time.Minute

// linkEvents records what Watch told onLink.
type linkEvents struct {
	mu  sync.Mutex
	ups []bool
}

func (e *linkEvents) add(up bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ups = append(e.ups, up)
}

func (e *linkEvents) get() []bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.ups)
}

// startWatch runs h.Watch until the test ends and returns its link events.
func startWatch(t *testing.T, h *Holder) *linkEvents {
	t.Helper()
	ev := &linkEvents{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Watch(ctx, watchEvery, ev.add) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	return ev
}

// quiet waits until the follow-up announcements of a Set are over, so a
// capture started afterwards sees only what comes later.
func quiet() { time.Sleep(followUpDelays[len(followUpDelays)-1] + 300*time.Millisecond) }

// devAddrs is `ip -o addr show dev name` in node i.
func devAddrs(t *testing.T, l *lab.Lab, i int, name string) string {
	t.Helper()
	out, err := l.Exec(l.Node(i), "ip", "-o", "addr", "show", "dev", name)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitAnnounced waits until the capture shows at least n announcements of
// every VIP in vips (gratuitous ARP replies, Neighbor Advertisements).
func waitAnnounced(t *testing.T, c *lab.Capture, n int, vips ...netip.Addr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var seen []string
	count := func(v netip.Addr) int {
		_, rep, adv := announcementLines(seen, v)
		return rep + adv
	}
	if _, ok := c.WaitFor(ctx, func(s string) bool {
		seen = append(seen, s)
		for _, v := range vips {
			if count(v) < n {
				return false
			}
		}
		return true
	}); !ok {
		var got []string
		for _, v := range vips {
			got = append(got, fmt.Sprintf("%s: %d", v, count(v)))
		}
		t.Fatalf("announcements captured %v, want %d of each", got, n)
	}
}

func waitVIPs(t *testing.T, l *lab.Lab, i int, want []netip.Addr) {
	t.Helper()
	lab.Eventually(t, 10*time.Second, fmt.Sprintf("node %d carries %v", i, want), func() error {
		if got := listVIPs(t, l, i); !slices.Equal(got, want) {
			return fmt.Errorf("carries %v", got)
		}
		return nil
	})
}

func TestWatchRestoresDeletedAddress(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1)
	h := newHolder(t, l, 0)
	if err := h.Set(leases(vip4, vip6)); err != nil {
		t.Fatal(err)
	}
	startWatch(t, h)
	quiet()
	c := l.Capture(l.Client(), lab.Iface, "arp or icmp6")
	defer c.Stop()
	for _, a := range []string{vip4.String() + "/32", vip6.String() + "/128"} {
		if _, err := l.Exec(l.Node(0), "ip", "addr", "del", a, "dev", lab.Iface); err != nil {
			t.Fatal(err)
		}
	}
	waitVIPs(t, l, 0, []netip.Addr{vip4, vip6})
	// Put back means announced again: the segment may have learnt another owner.
	waitAnnounced(t, c, burstCount, vip4, vip6)
	if got := h.Held(); !slices.Equal(got, []netip.Addr{vip4, vip6}) {
		t.Errorf("holder lists %v", got)
	}
}

func TestWatchLinkFlap(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1)
	h := newHolder(t, l, 0)
	if err := h.Set(leases(vip4, vip6)); err != nil {
		t.Fatal(err)
	}
	ev := startWatch(t, h)
	quiet()
	c := l.Capture(l.Client(), lab.Iface, "arp or icmp6")
	defer c.Stop()
	if _, err := l.Exec(l.Node(0), "ip", "link", "set", lab.Iface, "down"); err != nil {
		t.Fatal(err)
	}
	lab.Eventually(t, 10*time.Second, "Watch reports the link down", func() error {
		if got := ev.get(); !slices.Equal(got, []bool{false}) {
			return fmt.Errorf("link events %v", got)
		}
		return nil
	})
	if _, err := l.Exec(l.Node(0), "ip", "link", "set", lab.Iface, "up"); err != nil {
		t.Fatal(err)
	}
	// keep_addr_on_down=0: the kernel flushed the IPv6 VIP with the link.
	waitVIPs(t, l, 0, []netip.Addr{vip4, vip6})
	waitAnnounced(t, c, burstCount, vip4, vip6)
	lab.Eventually(t, 10*time.Second, "Watch reports the link up again", func() error {
		if got := ev.get(); !slices.Equal(got, []bool{false, true}) {
			return fmt.Errorf("link events %v", got)
		}
		return nil
	})
	for _, s := range c.Lines() {
		if strings.Contains(s, "tgt is "+vip6.String()) && !strings.Contains(s, "ff02::1") {
			t.Errorf("advertisement after the flap not sent to all-nodes: %q", s)
		}
	}
}

func TestReconcileLeavesForeignAddresses(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1)
	h := newHolder(t, l, 0)
	if err := h.Set(leases(vip4, vip6)); err != nil {
		t.Fatal(err)
	}
	// Each foreign address lacks one of our marks; the stray has them all.
	foreign := [][]string{
		{"198.51.100.120/32"},
		{"198.51.100.121/32", "label", lab.Iface + labelSuffix},
		{"198.51.100.122/24", "label", lab.Iface + labelSuffix, "noprefixroute"},
		{"198.51.100.123/32", "label", lab.Iface + ":x", "noprefixroute"},
		{"2001:db8:100::120/128", "noprefixroute"},
		{"2001:db8:100::121/128", "nodad"},
	}
	stray := []string{"198.51.100.124/32", "label", lab.Iface + labelSuffix, "noprefixroute"}
	for _, a := range append(foreign, stray) {
		if _, err := l.Exec(l.Node(0), append([]string{"ip", "addr", "add", a[0], "dev", lab.Iface}, a[1:]...)...); err != nil {
			t.Fatal(err)
		}
	}
	startWatch(t, h)
	lab.Eventually(t, 10*time.Second, "the stray address with our marks is removed", func() error {
		if s := devAddrs(t, l, 0, lab.Iface); strings.Contains(s, " 198.51.100.124/") {
			return errors.New("still there")
		}
		return nil
	})
	r, err := h.Reconcile()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Removed)+len(r.Readded)+len(r.Announced) != 0 {
		t.Errorf("a second pass changed something: %+v", r)
	}
	s := devAddrs(t, l, 0, lab.Iface)
	for _, a := range append(foreign, []string{l.NodeIP(0).String() + "/24"}, []string{l.NodeIP6(0).String() + "/64"}) {
		if !strings.Contains(s, " "+a[0]+" ") {
			t.Errorf("foreign address %s was touched:\n%s", a[0], s)
		}
	}
	if got := listVIPs(t, l, 0); !slices.Equal(got, []netip.Addr{vip4, vip6}) {
		t.Errorf("eth0 carries VIPs %v", got)
	}
}

func TestWatchRenamedInterface(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1)
	h := newHolder(t, l, 0)
	if err := h.Set(leases(vip4, vip6)); err != nil {
		t.Fatal(err)
	}
	ev := startWatch(t, h)
	quiet()
	c := l.Capture(l.Client(), lab.Iface, "arp or icmp6")
	defer c.Stop()
	const other = "eth9"
	rename := func(from, to string) {
		t.Helper()
		for _, args := range [][]string{{from, "down"}, {from, "name", to}, {to, "up"}} {
			if _, err := l.Exec(l.Node(0), append([]string{"ip", "link", "set"}, args...)...); err != nil {
				t.Fatal(err)
			}
		}
	}
	rename(lab.Iface, other)
	lab.Eventually(t, 10*time.Second, "the renamed link loses the VIPs and the interface counts as down", func() error {
		s := devAddrs(t, l, 0, other)
		if strings.Contains(s, " "+vip4.String()+"/") || strings.Contains(s, " "+vip6.String()+"/") {
			return fmt.Errorf("%s still carries a VIP:\n%s", other, s)
		}
		if got := ev.get(); !slices.Equal(got, []bool{false}) {
			return fmt.Errorf("link events %v", got)
		}
		return nil
	})
	if s := devAddrs(t, l, 0, other); !strings.Contains(s, " "+l.NodeIP(0).String()+"/24") {
		t.Errorf("the node's own address went with the VIPs:\n%s", s)
	}
	// The VIPs are still held: the daemon decides, the Holder follows the name.
	if got := h.Held(); !slices.Equal(got, []netip.Addr{vip4, vip6}) {
		t.Errorf("holder lists %v while the interface is away", got)
	}
	for _, s := range c.Lines() {
		if _, rep, adv := announcementLines([]string{s}, vip4); rep+adv > 0 {
			t.Errorf("announced while the interface was away: %q", s)
		}
	}
	rename(other, lab.Iface)
	waitVIPs(t, l, 0, []netip.Addr{vip4, vip6})
	waitAnnounced(t, c, burstCount, vip4, vip6)
	lab.Eventually(t, 10*time.Second, "the interface counts as up again", func() error {
		if got := ev.get(); !slices.Equal(got, []bool{false, true}) {
			return fmt.Errorf("link events %v", got)
		}
		return nil
	})
}

func TestReannounce(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1)
	h := newHolder(t, l, 0)
	if err := h.Set(leases(vip4)); err != nil {
		t.Fatal(err)
	}
	quiet()
	c := l.Capture(l.Client(), lab.Iface, "arp")
	defer c.Stop()
	// vip4b is not held: only what the Holder holds is announced.
	if err := h.Reannounce([]netip.Addr{vip4, vip4b}); err != nil {
		t.Fatal(err)
	}
	// The first burst and both follow-ups, as for a VIP just taken.
	waitAnnounced(t, c, burstCount*(1+len(followUpDelays)), vip4)
	for _, s := range c.Lines() {
		if _, rep, _ := announcementLines([]string{s}, vip4b); rep > 0 {
			t.Errorf("announced a VIP that is not held: %q", s)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Reannounce([]netip.Addr{vip4}); !errors.Is(err, ErrClosed) {
		t.Errorf("Reannounce after Close = %v, want ErrClosed", err)
	}
}
