package l2_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/test/cluster"
	"github.com/raftvip/raftvip/test/lab"
	"github.com/raftvip/raftvip/watchers"
)

// benchPool6 is 4096 IPv6 addresses: 198.51.100.0/24 cannot hold a thousand VIPs.
const benchPool6 = "bench6=2001:db8:100::1:0/116"

// benchTrials is how many failovers BenchmarkServiceFailoverNodeLoss measures
// (RAFTVIP_BENCH_TRIALS, default 10).
func benchTrials() int {
	if n, err := strconv.Atoi(os.Getenv("RAFTVIP_BENCH_TRIALS")); err == nil && n > 0 {
		return n
	}
	return 10
}

// quantiles returns the median and the maximum.
func quantiles(ds []time.Duration) (p50, mx time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkServiceFailoverNodeLoss: the worker announcing a Service VIP loses its
// cable; a client probing every 5 ms measures the time between the last reply from
// the old owner and the first from the new one. The voters are excluded from
// announcing, so the VIP moves between the two workers and the leader never changes.
// RAFTVIP_BENCH_AGENT_FLAGS adds agent flags, to compare timeouts with the defaults.
func BenchmarkServiceFailoverNodeLoss(b *testing.B) {
	e := startEnv(b, []string{mainPool}, append([]string{"--log-level=info"}, strings.Fields(os.Getenv("RAFTVIP_BENCH_AGENT_FLAGS"))...)...)
	l := e.l
	e.cp.CreatePod(b, cluster.Pod{Namespace: appNS, Name: "web-1", Node: "node0", IPs: []string{"10.244.0.10"},
		Labels: map[string]string{"app": "web"}, Ready: true})
	e.setExcluded(b, true, 0, 1, 2)
	e.createServices(b, service("f", false, v4Only, corev1.IPFamilyPolicySingleStack, map[string]string{"app": "web"}))
	vip := e.ingress(b, "f", 1)[0]
	target := netip.AddrPortFrom(vip, echoPort)
	var gaps []time.Duration
	for range benchTrials() {
		o := e.ownerOf(b, vip, "on a worker", func(o raftstore.Owner) bool { return o.Node == "node3" || o.Node == "node4" })
		victim, other := e.byName(o.Node), e.agent(3)
		if victim == other {
			other = e.agent(4)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		p := l.Probe(ctx, l.Client(), target, 5*time.Millisecond)
		if _, err := p.WaitReply(ctx, victim.NS, time.Now()); err != nil {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		e.cutLink(victim.Index)
		if _, err := p.WaitReply(ctx, other.NS, start); err != nil {
			b.Fatal(err)
		}
		res := p.Stop()
		cancel()
		sw := res.Switches()
		if len(sw) == 0 || sw[len(sw)-1].To != other.NS {
			b.Fatalf("no switch to %s in %+v", other.Name, sw)
		}
		gaps = append(gaps, sw[len(sw)-1].Gap)
		e.restoreLink(victim.Index)
		waitRejoined(b, victim)
		// Let the leader count it healthy again before the next trial.
		time.Sleep(time.Second)
	}
	p50, mx := quantiles(gaps)
	b.ReportMetric(ms(p50), "failover-p50-ms")
	b.ReportMetric(ms(mx), "failover-max-ms")
	fmt.Printf("service VIP failover on node loss over %d trials: p50 %s max %s all %v\n", len(gaps), p50, mx, gaps)
}

// benchServices creates n selector-less single-stack IPv6 Services, each with a
// hand-made EndpointSlice on node, and waits until every one has an address and an
// owner. It returns the addresses.
func (e *env) benchServices(tb testing.TB, n int, node string) []netip.Addr {
	tb.Helper()
	ctx := tb.Context()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				name := fmt.Sprintf("b%04d", i)
				s := service(name, false, []corev1.IPFamily{corev1.IPv6Protocol}, corev1.IPFamilyPolicySingleStack, nil)
				if _, err := e.cp.Client.CoreV1().Services(appNS).Create(ctx, s, metav1.CreateOptions{}); err != nil {
					errs <- err
					return
				}
				ep := netip.MustParseAddr(fmt.Sprintf("2001:db8:100::2:%x", i))
				if _, err := e.cp.Client.DiscoveryV1().EndpointSlices(appNS).Create(ctx, endpointSlice(name, node, ep), metav1.CreateOptions{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	var vips []netip.Addr
	lab.Eventually(tb, waitLong, fmt.Sprintf("%d services with an address and an owner", n), func() error {
		list, err := e.cp.Client.CoreV1().Services(appNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		vips = vips[:0]
		for _, s := range list.Items {
			for _, in := range s.Status.LoadBalancer.Ingress {
				vips = append(vips, netip.MustParseAddr(in.IP))
			}
		}
		if len(vips) != n {
			return fmt.Errorf("%d of %d have addresses", len(vips), n)
		}
		st := e.state(tb)
		on := len(ownedBy(st, node, vips))
		if on != n {
			return fmt.Errorf("%d of %d owned by %s", on, n, node)
		}
		return nil
	})
	return vips
}

// loneOwner puts n Service VIPs on node3 alone: the other nodes are excluded while
// the VIPs are assigned, then allowed again; owners are sticky, so nothing moves
// until node3 does.
func loneOwner(b *testing.B, n int) (*env, []netip.Addr, []netip.AddrPort) {
	e := startEnv(b, []string{benchPool6}, "--log-level=info")
	e.setExcluded(b, true, 0, 1, 2, 4)
	vips := e.benchServices(b, n, "node3")
	e.setExcluded(b, false, 0, 1, 2, 4)
	time.Sleep(time.Second)
	if got := len(ownedBy(e.state(b), "node3", vips)); got != n {
		b.Fatalf("only %d of %d VIPs stayed on node3 when the other nodes became eligible", got, n)
	}
	targets := make([]netip.AddrPort, n)
	for i, v := range vips {
		targets[i] = netip.AddrPortFrom(v, echoPort)
	}
	return e, vips, targets
}

// probeAll starts a multiProber and waits until every target answered from node3.
func probeAll(b *testing.B, e *env, targets []netip.AddrPort, every time.Duration) *multiProber {
	p, err := startMultiProber(e.l, e.l.Client(), targets, every)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Stop)
	owner := e.l.Node(3)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if missing := p.waitAll(ctx, func(h hit) bool { return h.ns == owner }); missing > 0 {
		b.Fatalf("%d of %d VIPs never answered from node3", missing, len(targets))
	}
	return p
}

// Benchmark1000ServiceVIPsNodeLoss: node3 announces 1000 Service VIPs and loses its
// cable. Reported: the time until every VIP answers the client from its new owner,
// the median VIP's time, and how long the FSM and the ServiceL2Status objects took.
func Benchmark1000ServiceVIPsNodeLoss(b *testing.B) {
	const n = 1000
	e, vips, targets := loneOwner(b, n)
	p := probeAll(b, e, targets, 50*time.Millisecond)
	old := e.l.Node(3)
	leader := e.leader(b)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	start := time.Now()
	e.cutLink(3)

	// The leader's FSM, watched while the client probes; the leader is a voter and
	// stays leader, node3 is a worker.
	fsm := make(chan time.Duration, 1)
	go func() {
		defer close(fsm)
		for ctx.Err() == nil {
			if st, err := leader.State(ctx); err == nil && len(ownedBy(st, "node3", vips)) == 0 {
				fsm <- time.Since(start)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	missing := p.waitAll(ctx, func(h hit) bool { return h.ns != old && !h.at.Before(start) })
	allAnswered := time.Since(start)
	p.Stop()
	if missing > 0 {
		b.Fatalf("%d of %d VIPs never answered from a new owner within %s", missing, n, waitLong)
	}
	fsmDone, ok := <-fsm
	if !ok {
		b.Fatal("the leader's state never showed every VIP off node3")
	}
	var objsDone time.Duration
	lab.Eventually(b, waitLong, "ServiceL2Status objects off node3", func() error {
		count, on3 := 0, 0
		for _, u := range e.l2Statuses(b) {
			count++
			if u.GetLabels()[watchers.LabelNode] == "node3" {
				on3++
			}
		}
		if on3 > 0 || count != n {
			return fmt.Errorf("%d objects, %d on node3", count, on3)
		}
		objsDone = time.Since(start)
		return nil
	})
	var per []time.Duration
	for _, t := range firstOther(p.snapshot(), old, start) {
		per = append(per, t.Sub(start))
	}
	p50, mx := quantiles(per)
	b.ReportMetric(ms(mx), "all-answer-ms")
	b.ReportMetric(ms(p50), "p50-answer-ms")
	b.ReportMetric(ms(fsmDone), "fsm-moved-by-ms")
	b.ReportMetric(ms(objsDone), "l2status-synced-by-ms")
	fmt.Printf("%d service VIPs, owner cut off: all answer from new owners after %s (p50 VIP %s, waited %s); FSM moved by %s; ServiceL2Status objects synced by %s\n",
		n, mx, p50, allAnswered.Round(time.Millisecond), fsmDone.Round(time.Millisecond), objsDone.Round(time.Millisecond))
}

// BenchmarkDrain100ServiceVIPs: node3 announces 100 Service VIPs and gets SIGTERM; it
// asks the leader to move them before it lets go. Reported: the longest time any VIP
// went without answering the client (probed every 10 ms), the median VIP's longest
// gap, and how long the agent took to stop.
func BenchmarkDrain100ServiceVIPs(b *testing.B) {
	const n, every = 100, 10 * time.Millisecond
	e, _, targets := loneOwner(b, n)
	p := probeAll(b, e, targets, every)
	old := e.l.Node(3)
	a := e.agent(3)
	start := time.Now()
	if err := a.Proc.Stop(); err != nil {
		b.Fatalf("drained agent: %v", err)
	}
	stopped := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	missing := p.waitAll(ctx, func(h hit) bool { return h.ns != old && !h.at.Before(start) })
	time.Sleep(10 * every)
	end := time.Now()
	p.Stop()
	if missing > 0 {
		b.Fatalf("%d of %d VIPs never answered from a new owner", missing, n)
	}
	gaps := maxGaps(p.snapshot(), start, end)
	p50, mx := quantiles(gaps)
	b.ReportMetric(ms(mx), "max-gap-ms")
	b.ReportMetric(ms(p50), "p50-vip-max-gap-ms")
	b.ReportMetric(ms(stopped), "stop-ms")
	fmt.Printf("drain of a node with %d service VIPs (SIGTERM), probed every %s: longest gap of any VIP %s, median VIP's longest gap %s; agent stopped after %s\n",
		n, every, mx, p50, stopped.Round(time.Millisecond))
}
