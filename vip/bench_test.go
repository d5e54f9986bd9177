package vip

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/lab"
	"github.com/vishvananda/netns"
)

// BenchmarkAnnounce measures one announcement burst (burstCount rounds,
// burstSpacing apart) on a lab interface.
func BenchmarkAnnounce(b *testing.B) {
	for _, vip := range []netip.Addr{vip4, vip6} {
		b.Run(familyName(vip), func(b *testing.B) {
			l := lab.New(b, 1)
			var ann *Announcer
			err := l.RunInNS(l.Node(0), func() error {
				if err := AddAddress(lab.Iface, vip); err != nil {
					return err
				}
				var err error
				ann, err = NewAnnouncer(lab.Iface, nil)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			defer ann.Close()
			for b.Loop() {
				if err := ann.Announce(vip); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAddRemoveAddress measures putting a VIP on the interface and
// taking it off again with netlink.
func BenchmarkAddRemoveAddress(b *testing.B) {
	for _, vip := range []netip.Addr{vip4, vip6} {
		b.Run(familyName(vip), func(b *testing.B) {
			l := lab.New(b, 1)
			err := l.RunInNS(l.Node(0), func() error {
				for b.Loop() {
					if err := AddAddress(lab.Iface, vip); err != nil {
						return err
					}
					if err := RemoveAddress(lab.Iface, vip); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkHandover measures the client-visible outage when a VIP moves
// between two Holders (release on the old node, then Set on the new one),
// with the client probing every 5 ms. This is the floor under any failover:
// no election, no fencing, just addresses and announcements. Each iteration
// is one move; it reports the gap between the last reply from the old node
// and the first from the new one (p50 and max, ms).
func BenchmarkHandover(b *testing.B) {
	for _, vip := range []netip.Addr{vip4, vip6} {
		b.Run(familyName(vip), func(b *testing.B) {
			const port = 7950
			l := lab.New(b, 2)
			l.StartEcho(port)
			holders := make([]*Holder, 2)
			for i := range holders {
				err := l.RunInNS(l.Node(i), func() error {
					var err error
					holders[i], err = NewHolder(lab.Iface, slog.New(slog.DiscardHandler))
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				defer holders[i].Close()
			}
			if err := holders[0].Set(leases(vip)); err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			p := l.Probe(ctx, l.Client(), netip.AddrPortFrom(vip, port), 5*time.Millisecond)
			if _, err := p.WaitReply(ctx, l.Node(0), time.Time{}); err != nil {
				b.Fatal(err)
			}
			owner := 0
			for b.Loop() {
				next := 1 - owner
				moved := time.Now()
				if err := holders[owner].Set(nil); err != nil {
					b.Fatal(err)
				}
				if err := holders[next].Set(leases(vip)); err != nil {
					b.Fatal(err)
				}
				wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := p.WaitReply(wctx, l.Node(next), moved)
				wcancel()
				if err != nil {
					b.Fatal(err)
				}
				owner = next
				// Let a few more replies arrive so moves do not overlap.
				time.Sleep(30 * time.Millisecond)
			}
			res := p.Stop()
			var gaps []float64
			for _, s := range res.Switches() {
				gaps = append(gaps, float64(s.Gap)/float64(time.Millisecond))
			}
			if len(gaps) == 0 {
				b.Fatalf("no owner switch seen in %d replies", len(res.Replies))
			}
			slices.Sort(gaps)
			b.ReportMetric(gaps[len(gaps)/2], "p50-gap-ms")
			b.ReportMetric(gaps[len(gaps)-1], "max-gap-ms")
			b.ReportMetric(float64(res.Lost()), "lost-probes")
			b.ReportMetric(float64(len(gaps)), "switches")
		})
	}
}

// BenchmarkSetMany measures a Holder taking 100 VIPs at once (add and one
// interleaved announcement burst) and releasing them.
func BenchmarkSetMany(b *testing.B) {
	l := lab.New(b, 1)
	var h *Holder
	err := l.RunInNS(l.Node(0), func() error {
		var err error
		h, err = NewHolder(lab.Iface, slog.New(slog.DiscardHandler))
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	var many []netip.Addr
	for i := range 100 {
		many = append(many, netip.AddrFrom4([4]byte{198, 51, 100, byte(100 + i)}))
	}
	for b.Loop() {
		if err := h.Set(leases(many...)); err != nil {
			b.Fatal(err)
		}
		if err := h.Set(nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFenceRenew1000 measures one renewal of 1,000 kernel leases (half
// IPv4, half IPv6), which the announce loop does on every pass; with the
// default pass every 18.75 ms, cpu-percent is the share of one core it costs.
func BenchmarkFenceRenew1000(b *testing.B) {
	l := lab.New(b, 1)
	var f *Fence
	err := l.RunInNS(l.Node(0), func() error {
		ns, err := netns.Get()
		if err != nil {
			return err
		}
		b.Cleanup(func() { _ = ns.Close() })
		if f, err = NewFenceAt(ns); err != nil {
			return err
		}
		return f.Install()
	})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var vips []netip.Addr
	var ls []Lease
	for i := range 1000 {
		a := netip.AddrFrom4([4]byte{198, 51, 100 + byte(i/250), byte(i % 250)})
		if i%2 == 1 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 14: byte(i >> 8), 15: byte(i)})
		}
		vips = append(vips, a)
		ls = append(ls, Lease{VIP: a, Until: time.Now().Add(time.Hour)})
	}
	if err := f.Write(vips, ls); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for b.Loop() {
		if err := f.Write(vips, ls); err != nil {
			b.Fatal(err)
		}
	}
	perOp := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(100*float64(perOp)/float64(18750*time.Microsecond), "cpu-percent")
}

// BenchmarkReconcile1000 measures one Reconcile pass (the periodic check, and
// the one every settled burst of netlink notifications causes) over an
// interface carrying 1,000 held VIPs (200 IPv4, 800 IPv6) and the node's own
// addresses, with nothing to repair: one link lookup, one address dump and the
// comparison. cpu-us/op is the process's user and system CPU per pass.
func BenchmarkReconcile1000(b *testing.B) {
	l := lab.New(b, 1)
	var h *Holder
	err := l.RunInNS(l.Node(0), func() error {
		var err error
		h, err = NewHolder(lab.Iface, slog.New(slog.DiscardHandler))
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	var vips []netip.Addr
	for i := range 200 {
		vips = append(vips, netip.AddrFrom4([4]byte{198, 51, 100, byte(56 + i)}))
	}
	for i := range 800 {
		vips = append(vips, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 12: 0, 13: 1, 14: byte(i >> 8), 15: byte(i)}))
	}
	if err := h.Set(leases(vips...)); err != nil {
		b.Fatal(err)
	}
	// The follow-up announcements hold the Holder's lock; let them finish.
	time.Sleep(followUpDelays[len(followUpDelays)-1] + 300*time.Millisecond)
	if got := listVIPs(b, l, 0); len(got) != len(vips) {
		b.Fatalf("interface carries %d VIPs, want %d", len(got), len(vips))
	}
	before := cpuTime(b)
	for b.Loop() {
		r, err := h.Reconcile()
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Readded)+len(r.Removed)+len(r.Announced) != 0 {
			b.Fatalf("a pass over an interface in sync changed something: %+v", r)
		}
	}
	b.ReportMetric(float64((cpuTime(b)-before).Microseconds())/float64(b.N), "cpu-us/op")
	b.ReportMetric(float64(len(vips)), "vips")
}

// cpuTime is the user plus system CPU the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
