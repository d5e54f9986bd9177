package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/raftvip/raftvip/test/lab"
)

var (
	vip4  = netip.MustParseAddr("198.51.100.100")
	vip6  = netip.MustParseAddr("2001:db8:100::100")
	vip4b = netip.MustParseAddr("198.51.100.101")
)

// inNS runs fn inside a lab namespace and fails the test on error.
func inNS(t testing.TB, l *lab.Lab, ns string, fn func() error) {
	t.Helper()
	if err := l.RunInNS(ns, fn); err != nil {
		t.Fatalf("in %s: %v", ns, err)
	}
}

// newHolder makes a Holder for eth0 inside node i and closes it at cleanup.
func newHolder(t *testing.T, l *lab.Lab, i int) *Holder {
	t.Helper()
	var h *Holder
	inNS(t, l, l.Node(i), func() error {
		var err error
		h, err = NewHolder(lab.Iface, slog.New(slog.DiscardHandler))
		return err
	})
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close holder: %v", err)
		}
	})
	return h
}

// listVIPs returns ListVIPAddresses of eth0 in node i.
func listVIPs(t testing.TB, l *lab.Lab, i int) []netip.Addr {
	t.Helper()
	var got []netip.Addr
	inNS(t, l, l.Node(i), func() error {
		var err error
		got, err = ListVIPAddresses(lab.Iface)
		return err
	})
	return got
}

// waitNeigh polls the client's neighbour entry for ip until it names want.
// It sends no traffic, so only an announcement can change the entry.
func waitNeigh(t *testing.T, l *lab.Lab, ip netip.Addr, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mac, state, err := l.Neigh(l.Client(), ip)
		if err == nil && mac.String() == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client neighbour for %s = %s (%s, %v), want %s", ip, mac, state, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pingArgs(ip netip.Addr) []string {
	return []string{"ping", "-c", "1", "-W", "2", "-q", ip.String()}
}

// primeClient pings vip from the client so its neighbour table holds an entry
// for it, and checks the entry names node i.
func primeClient(t *testing.T, l *lab.Lab, vip netip.Addr, i int) {
	t.Helper()
	if _, err := l.Exec(l.Client(), pingArgs(vip)...); err != nil {
		t.Fatalf("client cannot reach %s on node %d: %v", vip, i, err)
	}
	mac, state, err := l.Neigh(l.Client(), vip)
	if err != nil {
		t.Fatal(err)
	}
	if mac.String() != l.NodeMAC(i).String() {
		t.Fatalf("client neighbour for %s = %s (%s), want node %d's %s", vip, mac, state, i, l.NodeMAC(i))
	}
	if state != "REACHABLE" && state != "STALE" && state != "DELAY" {
		t.Fatalf("client neighbour for %s in state %s, want a resolved entry", vip, state)
	}
}

// TestAnnounceUpdatesClient moves a VIP from node 0 to node 1 with the plain
// functions and checks that the client's existing neighbour entry follows
// only once node 1 announces.
func TestAnnounceUpdatesClient(t *testing.T) {
	for _, vip := range []netip.Addr{vip4, vip6} {
		t.Run(familyName(vip), func(t *testing.T) {
			t.Parallel()
			l := lab.New(t, 2)
			inNS(t, l, l.Node(0), func() error { return AddAddress(lab.Iface, vip) })
			var ann *Announcer
			inNS(t, l, l.Node(1), func() error {
				var err error
				ann, err = NewAnnouncer(lab.Iface, nil)
				return err
			})
			defer ann.Close()
			primeClient(t, l, vip, 0)

			inNS(t, l, l.Node(0), func() error { return RemoveAddress(lab.Iface, vip) })
			inNS(t, l, l.Node(1), func() error { return AddAddress(lab.Iface, vip) })
			// Control: taking the address alone tells the client nothing.
			if mac, state, err := l.Neigh(l.Client(), vip); err != nil || mac.String() != l.NodeMAC(0).String() {
				t.Fatalf("before announcing, client neighbour = %s (%s, %v), want still node 0's", mac, state, err)
			}
			if err := ann.Announce(vip); err != nil {
				t.Fatal(err)
			}
			waitNeigh(t, l, vip, l.NodeMAC(1).String())
			if _, err := l.Exec(l.Client(), pingArgs(vip)...); err != nil {
				t.Errorf("client cannot reach %s on node 1: %v", vip, err)
			}
		})
	}
}

// TestHolderMove is the daemon's path: two Holders hand a VIP over.
func TestHolderMove(t *testing.T) {
	for _, vip := range []netip.Addr{vip4, vip6} {
		t.Run(familyName(vip), func(t *testing.T) {
			t.Parallel()
			l := lab.New(t, 2)
			h0, h1 := newHolder(t, l, 0), newHolder(t, l, 1)
			if err := h0.Set(leases(vip)); err != nil {
				t.Fatal(err)
			}
			if got := h0.Held(); !slices.Equal(got, []netip.Addr{vip}) {
				t.Fatalf("node 0 holds %v, want [%s]", got, vip)
			}
			primeClient(t, l, vip, 0)

			if err := h0.Set(nil); err != nil {
				t.Fatal(err)
			}
			if got := listVIPs(t, l, 0); len(got) != 0 {
				t.Fatalf("node 0 still carries %v after release", got)
			}
			if err := h1.Set(leases(vip)); err != nil {
				t.Fatal(err)
			}
			waitNeigh(t, l, vip, l.NodeMAC(1).String())
			if got := listVIPs(t, l, 1); !slices.Equal(got, []netip.Addr{vip}) {
				t.Errorf("node 1 carries %v, want [%s]", got, vip)
			}
			if len(h0.Held()) != 0 {
				t.Errorf("node 0 holder still lists %v", h0.Held())
			}
		})
	}
}

// announcementLines counts captured announcements of vip.
func announcementLines(lines []string, vip netip.Addr) (requests, replies, advertisements int) {
	for _, s := range lines {
		switch {
		case strings.Contains(s, "Request who-has "+vip.String()+" tell "+vip.String()):
			requests++
		case strings.Contains(s, "Reply "+vip.String()+" is-at"):
			replies++
		case strings.Contains(s, "neighbor advertisement") && strings.Contains(s, "tgt is "+vip.String()):
			advertisements++
		}
	}
	return
}

func TestHolderFollowUps(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1)
	h := newHolder(t, l, 0)
	c := l.Capture(l.Client(), lab.Iface, "arp or icmp6")
	if err := h.Set(leases(vip4, vip6)); err != nil {
		t.Fatal(err)
	}
	// Immediate burst plus one per follow-up delay.
	bursts := 1 + len(followUpDelays)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	want := bursts * burstCount
	var seen []string
	if _, ok := c.WaitFor(ctx, func(s string) bool {
		seen = append(seen, s)
		req, rep, _ := announcementLines(seen, vip4)
		_, _, adv := announcementLines(seen, vip6)
		return req >= want && rep >= want && adv >= want
	}); !ok {
		req, rep, _ := announcementLines(seen, vip4)
		_, _, adv := announcementLines(seen, vip6)
		t.Fatalf("captured %d requests, %d replies, %d advertisements; want %d of each", req, rep, adv, want)
	}
	lines := c.Stop()
	req, rep, _ := announcementLines(lines, vip4)
	_, _, adv := announcementLines(lines, vip6)
	if req != want || rep != want || adv != want {
		t.Errorf("captured %d requests, %d replies, %d advertisements; want exactly %d of each", req, rep, adv, want)
	}
	for _, s := range lines {
		if strings.Contains(s, "tgt is "+vip6.String()) && !strings.Contains(s, "ff02::1") {
			t.Errorf("advertisement not sent to all-nodes: %q", s)
		}
		if strings.Contains(s, "is-at") && !strings.Contains(s, "is-at "+l.NodeMAC(0).String()) {
			t.Errorf("ARP reply names the wrong MAC: %q", s)
		}
	}
}

func TestHolderReleaseStopsFollowUps(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1)
	h := newHolder(t, l, 0)
	c := l.Capture(l.Client(), lab.Iface, "arp")
	if err := h.Set(leases(vip4)); err != nil {
		t.Fatal(err)
	}
	if err := h.Set(nil); err != nil {
		t.Fatal(err)
	}
	// Wait past the last follow-up: none may be sent for a released VIP.
	time.Sleep(followUpDelays[len(followUpDelays)-1] + 500*time.Millisecond)
	req, rep, _ := announcementLines(c.Stop(), vip4)
	if req != burstCount || rep != burstCount {
		t.Errorf("captured %d requests and %d replies, want only the first burst (%d each)", req, rep, burstCount)
	}
}

func TestHolderRepairsRemovedAddress(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1)
	h := newHolder(t, l, 0)
	if err := h.Set(leases(vip4, vip6)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exec(l.Node(0), "ip", "addr", "del", vip6.String()+"/128", "dev", lab.Iface); err != nil {
		t.Fatal(err)
	}
	if got := listVIPs(t, l, 0); !slices.Equal(got, []netip.Addr{vip4}) {
		t.Fatalf("after external removal eth0 carries %v", got)
	}
	r, err := h.Reconcile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Readded, []netip.Addr{vip6}) || len(r.Removed) != 0 || !r.Up || r.Changed {
		t.Errorf("Reconcile = %+v, want %s re-added and nothing else", r, vip6)
	}
	if got := listVIPs(t, l, 0); !slices.Equal(got, []netip.Addr{vip4, vip6}) {
		t.Errorf("Reconcile did not restore the removed VIP: %v", got)
	}
	if err := h.AnnounceAll(); err != nil {
		t.Errorf("AnnounceAll: %v", err)
	}
	if err := h.RemoveAll(); err != nil {
		t.Fatal(err)
	}
	if got := listVIPs(t, l, 0); len(got) != 0 || len(h.Held()) != 0 {
		t.Errorf("after RemoveAll eth0 carries %v, holder lists %v", got, h.Held())
	}
}

func TestHolderErrors(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1, lab.WithoutIPv6())
	h := newHolder(t, l, 0)
	err := h.Set(leases(vip4, netip.MustParseAddr("127.0.0.1"), vip6))
	if err == nil {
		t.Fatalf("Set with a loopback VIP and an IPv6 VIP on an IPv4-only node succeeded")
	}
	for _, w := range []string{"127.0.0.1", vip6.String()} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Set error %q does not mention %s", err, w)
		}
	}
	if got := h.Held(); !slices.Equal(got, []netip.Addr{vip4}) {
		t.Errorf("holder lists %v, want only the good VIP %s", got, vip4)
	}
	inNS(t, l, l.Node(0), func() error {
		if _, err := NewHolder("nope0", nil); err == nil {
			return errors.New("NewHolder on a missing interface succeeded")
		}
		return nil
	})
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Set(leases(vip4)); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close = %v, want ErrClosed", err)
	}
	if _, err := h.CleanupStale(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("CleanupStale after Close = %v, want ErrClosed", err)
	}
	if err := h.AnnounceAll(); !errors.Is(err, ErrClosed) {
		t.Errorf("AnnounceAll after Close = %v, want ErrClosed", err)
	}
}

func TestAnnouncerErrors(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1)
	var ann *Announcer
	inNS(t, l, l.Node(0), func() error {
		if _, err := NewAnnouncer("nope0", nil); err == nil || !strings.Contains(err.Error(), "nope0") {
			return fmt.Errorf("NewAnnouncer on a missing interface: %v", err)
		}
		var err error
		ann, err = NewAnnouncer(lab.Iface, nil)
		return err
	})
	if err := ann.Announce(netip.MustParseAddr("224.0.0.1")); err == nil {
		t.Errorf("announcing a multicast address succeeded")
	}
	// IPv6 advertisements leave from the VIP, so one not on the interface fails.
	if err := ann.Announce(netip.MustParseAddr("2001:db8:100::199")); err == nil {
		t.Errorf("announcing an IPv6 VIP that is not on the interface succeeded")
	}
	if err := ann.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ann.Announce(vip4); !errors.Is(err, ErrClosed) {
		t.Errorf("Announce after Close = %v, want ErrClosed", err)
	}
	if err := ann.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func counterValue(t *testing.T, c *prometheus.CounterVec, family string) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.WithLabelValues(family).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestMetricsCount(t *testing.T) {
	l := lab.New(t, 1)
	h := newHolder(t, l, 0)
	before := map[string]float64{}
	for _, f := range []string{"ipv4", "ipv6"} {
		before["ann"+f] = counterValue(t, announcements, f)
		before["pkt"+f] = counterValue(t, announcementPackets, f)
		before["add"+f] = counterValue(t, addressesAdded, f)
		before["del"+f] = counterValue(t, addressesRemoved, f)
	}
	if err := h.Set(leases(vip4, vip6)); err != nil {
		t.Fatal(err)
	}
	var g dto.Metric
	if err := held.WithLabelValues(lab.Iface, "ipv6").Write(&g); err != nil {
		t.Fatal(err)
	}
	if g.GetGauge().GetValue() != 1 {
		t.Errorf("held{ipv6} = %v, want 1", g.GetGauge().GetValue())
	}
	if err := h.Set(nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"annipv4": 1, "annipv6": 1,
		"pktipv4": 2 * burstCount, "pktipv6": burstCount,
		"addipv4": 1, "addipv6": 1, "delipv4": 1, "delipv6": 1,
	}
	vecs := map[string]*prometheus.CounterVec{"ann": announcements, "pkt": announcementPackets, "add": addressesAdded, "del": addressesRemoved}
	for k, w := range want {
		got := counterValue(t, vecs[k[:3]], k[3:]) - before[k]
		if got < w {
			t.Errorf("%s rose by %v, want at least %v", k, got, w)
		}
	}
}

func TestAnnounceBatch(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1)
	h := newHolder(t, l, 0)
	c := l.Capture(l.Client(), lab.Iface, "arp")
	var many []netip.Addr
	for i := range 40 {
		many = append(many, netip.AddrFrom4([4]byte{198, 51, 100, byte(100 + i)}))
	}
	if err := h.Set(leases(many...)); err != nil {
		t.Fatal(err)
	}
	if got := listVIPs(t, l, 0); !slices.Equal(got, many) {
		t.Fatalf("eth0 carries %v, want %v", got, many)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	announced := map[string]bool{}
	if _, ok := c.WaitFor(ctx, func(s string) bool {
		for _, v := range many {
			if strings.Contains(s, "Reply "+v.String()+" is-at") {
				announced[v.String()] = true
			}
		}
		return len(announced) == len(many)
	}); !ok {
		lines := c.Stop()
		t.Fatalf("announced %d of %d VIPs (%d lines): %v", len(announced), len(many), len(lines), announced)
	}

	var ann *Announcer
	inNS(t, l, l.Node(0), func() error {
		var err error
		ann, err = NewAnnouncer(lab.Iface, nil)
		return err
	})
	defer ann.Close()
	bad := []netip.Addr{netip.MustParseAddr("224.0.0.1"), netip.MustParseAddr("2001:db8:100::199")}
	err := ann.AnnounceBatch([]netip.Addr{bad[0], many[0], bad[1]})
	if err == nil {
		t.Fatalf("AnnounceBatch with bad VIPs succeeded")
	}
	for _, b := range bad {
		if !strings.Contains(err.Error(), b.String()) {
			t.Errorf("AnnounceBatch error %q does not name %s", err, b)
		}
	}
	if strings.Contains(err.Error(), many[0].String()+" ") {
		t.Errorf("AnnounceBatch error %q blames the good VIP", err)
	}
}

// TestEachGARPFormUpdatesClient sends the request form and the reply form
// alone, each within the neighbour locktime of the client's last update, and
// checks that each on its own moves the client's existing entry: the kernel
// must see both as gratuitous.
func TestEachGARPFormUpdatesClient(t *testing.T) {
	for form, name := range []string{"request", "reply"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := lab.New(t, 2)
			inNS(t, l, l.Node(0), func() error { return AddAddress(lab.Iface, vip4) })
			primeClient(t, l, vip4, 0)
			inNS(t, l, l.Node(0), func() error { return RemoveAddress(lab.Iface, vip4) })
			inNS(t, l, l.Node(1), func() error {
				if err := AddAddress(lab.Iface, vip4); err != nil {
					return err
				}
				ifi, err := net.InterfaceByName(lab.Iface)
				if err != nil {
					return err
				}
				s, err := openARP(ifi)
				if err != nil {
					return err
				}
				defer s.close()
				frames, err := garpFrames(ifi.HardwareAddr, vip4)
				if err != nil {
					return err
				}
				_, err = s.conn.WriteTo(frames[form], &packet.Addr{HardwareAddr: ethernet.Broadcast})
				return err
			})
			waitNeigh(t, l, vip4, l.NodeMAC(1).String())
		})
	}
}

// leases gives every VIP a lease long enough never to expire within a test, for
// tests of a Holder without a fence.
func leases(vips ...netip.Addr) []Lease {
	out := make([]Lease, len(vips))
	for i, v := range vips {
		out[i] = Lease{VIP: v, Until: time.Now().Add(time.Hour)}
	}
	return out
}
