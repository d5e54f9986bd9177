package bgp

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/bgprouter"
	"github.com/raftvip/raftvip/test/lab"
)

// benchPeering is plain eBGP over IPv4 with default timers for every node.
func benchPeering(l *lab.Lab, i int) (Peer, bgprouter.Neighbor, uint32) {
	return Peer{Address: l.ClientIP(), AS: routerAS}, bgprouter.Neighbor{Address: l.NodeIP(i), AS: speakerAS}, speakerAS
}

// ms is a duration in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// nthVIP4 is the IPv4 VIP number n (n < 150): 198.51.100.100 onwards.
func nthVIP4(n int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, byte(100 + n)}) }

// nthVIP6 is the IPv6 VIP number n: 2001:db8:100::1:0 onwards.
func nthVIP6(n int) netip.Addr {
	a := netip.MustParseAddr("2001:db8:100::1:0").As16()
	a[14], a[15] = byte(n>>8), byte(n)
	return netip.AddrFrom16(a)
}

// quantiles returns the median and the maximum of xs (which it sorts).
func quantiles(xs []float64) (p50, maxV float64) {
	slices.Sort(xs)
	return xs[len(xs)/2], xs[len(xs)-1]
}

// BenchmarkAnnounce measures the time from Set (started inside the speaker's
// process) to the path's arrival at the router (its adj-RIB-in event), for
// 100 IPv4 VIPs added one by one, each Set carrying all VIPs so far.
// Reports p50 and max (ms) over every VIP of every iteration.
func BenchmarkAnnounce(b *testing.B) {
	const vips = 100
	bl := newBGPLab(b, 1, benchPeering)
	var lat []float64
	for b.Loop() {
		want := map[netip.Addr]PathAttrs{}
		for n := range vips {
			vip := nthVIP4(n)
			want[vip] = PathAttrs{}
			tm := bl.set(b, 0, want)
			at := bl.router.Await(b, bgprouter.AwaitArgs{Want: bgprouter.View{host(vip): {bl.addrs[0]}},
				Since: tm.Start, Timeout: awaitTimeout})
			lat = append(lat, ms(at.Sub(tm.Start)))
		}
		bl.speakers[0].Call(b, "Speaker.WithdrawAll", struct{}{}, &Timing{})
		gone := bgprouter.View{}
		for n := range vips {
			gone[host(nthVIP4(n))] = nil
		}
		bl.router.Await(b, bgprouter.AwaitArgs{Want: gone, Timeout: awaitTimeout})
	}
	p50, maxV := quantiles(lat)
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(maxV, "max-ms")
	b.ReportMetric(float64(len(lat)), "samples")
}

// BenchmarkCloseWithdraw measures how long after Close starts the router
// has dropped all of a speaker's 100 paths (withdrawals, then the Cease
// NOTIFICATION), and how long the Close call takes. Each iteration starts a
// fresh speaker process, since Close is final.
func BenchmarkCloseWithdraw(b *testing.B) {
	const vips = 100
	bl := newBGPLab(b, 1, benchPeering)
	want := map[netip.Addr]PathAttrs{}
	have := bgprouter.View{}
	gone := bgprouter.View{}
	for n := range vips {
		want[nthVIP4(n)] = PathAttrs{}
		have[host(nthVIP4(n))] = []netip.Addr{bl.addrs[0]}
		gone[host(nthVIP4(n))] = nil
	}
	var withdraw, call []float64
	first := true
	for b.Loop() {
		if !first {
			bl.startSpeaker(b, 0)
			bl.awaitPeer(b, 0, true)
		}
		first = false
		bl.set(b, 0, want)
		bl.router.Await(b, bgprouter.AwaitArgs{Want: have, Timeout: awaitTimeout})
		var tm Timing
		bl.speakers[0].Call(b, "Speaker.Close", struct{}{}, &tm)
		at := bl.router.Await(b, bgprouter.AwaitArgs{Want: gone, Since: tm.Start, Timeout: awaitTimeout})
		withdraw = append(withdraw, ms(at.Sub(tm.Start)))
		call = append(call, ms(tm.End.Sub(tm.Start)))
		bl.awaitPeer(b, 0, false)
	}
	p50, maxV := quantiles(withdraw)
	b.ReportMetric(p50, "p50-withdrawn-ms")
	b.ReportMetric(maxV, "max-withdrawn-ms")
	p50, maxV = quantiles(call)
	b.ReportMetric(p50, "p50-close-call-ms")
	b.ReportMetric(maxV, "max-close-call-ms")
}

// BenchmarkConverge1000 has three speakers advertise the same 1000 IPv6 VIPs
// at once and measures the router's view: prefixes and paths in its RIB,
// the time from the first Set to the last path's arrival, the slowest Set
// call, and the time from WithdrawAll on all three to an empty RIB (p50 and
// max over iterations).
func BenchmarkConverge1000(b *testing.B) {
	const vips, nodes = 1000, 3
	bl := newBGPLab(b, nodes, benchPeering)
	want := map[netip.Addr]PathAttrs{}
	full := bgprouter.View{}
	empty := bgprouter.View{}
	for n := range vips {
		want[nthVIP6(n)] = PathAttrs{Communities: []string{"65000:100"}}
		full[host(nthVIP6(n))] = bl.addrs
		empty[host(nthVIP6(n))] = nil
	}
	var converge, setCall, withdraw []float64
	var prefixes, paths int
	for b.Loop() {
		start, slowest := all(b, bl, "Set", want)
		at := bl.router.Await(b, bgprouter.AwaitArgs{Want: full, Since: start, Timeout: 5 * time.Minute})
		converge = append(converge, ms(at.Sub(start)))
		setCall = append(setCall, ms(slowest))

		rib := bl.router.Paths(b)
		paths = len(rib)
		prefixes = len(bgprouter.ViewOf(rib))

		start, _ = all(b, bl, "WithdrawAll", struct{}{})
		at = bl.router.Await(b, bgprouter.AwaitArgs{Want: empty, Since: start, Timeout: 5 * time.Minute})
		withdraw = append(withdraw, ms(at.Sub(start)))
	}
	b.ReportMetric(float64(prefixes), "router-prefixes")
	b.ReportMetric(float64(paths), "router-paths")
	p50, maxV := quantiles(converge)
	b.ReportMetric(p50, "p50-converge-ms")
	b.ReportMetric(maxV, "max-converge-ms")
	p50, maxV = quantiles(setCall)
	b.ReportMetric(p50, "p50-set-call-ms")
	b.ReportMetric(maxV, "max-set-call-ms")
	p50, maxV = quantiles(withdraw)
	b.ReportMetric(p50, "p50-withdraw-converge-ms")
	b.ReportMetric(maxV, "max-withdraw-converge-ms")
}

// all calls method on every speaker at once and returns the earliest start
// and the longest call.
func all(b *testing.B, bl *bgpLab, method string, args any) (time.Time, time.Duration) {
	b.Helper()
	tms := make([]Timing, len(bl.speakers))
	errs := make([]error, len(bl.speakers))
	var wg sync.WaitGroup
	for i, sp := range bl.speakers {
		wg.Go(func() { errs[i] = sp.Try("Speaker."+method, args, &tms[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatalf("%s on all speakers: %v", method, err)
	}
	start, slowest := tms[0].Start, time.Duration(0)
	for _, tm := range tms {
		if tm.Start.Before(start) {
			start = tm.Start
		}
		slowest = max(slowest, tm.End.Sub(tm.Start))
	}
	return start, slowest
}
