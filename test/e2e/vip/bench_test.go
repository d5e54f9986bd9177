package vip_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/lab"
)

// benchTrials is how many failovers each benchmark measures (RAFTVIP_BENCH_TRIALS).
func benchTrials() int {
	if n, err := strconv.Atoi(os.Getenv("RAFTVIP_BENCH_TRIALS")); err == nil && n > 0 {
		return n
	}
	return 10
}

func report(b *testing.B, name string, gaps []time.Duration) {
	slices.Sort(gaps)
	p50 := gaps[len(gaps)/2]
	mx := gaps[len(gaps)-1]
	b.ReportMetric(float64(p50.Milliseconds()), name+"-p50-ms")
	b.ReportMetric(float64(mx.Milliseconds()), name+"-max-ms")
	fmt.Printf("%s over %d trials: p50 %s max %s all %v\n", name, len(gaps), p50, mx, gaps)
}

// failoverGap measures, from a client probing the VIP every 5 ms, the time between
// the last reply from the old leader and the first from the new one.
func failoverGap(b *testing.B, l *lab.Lab, all []*agents.Agent, move func(leader *agents.Agent), restore func(leader *agents.Agent)) time.Duration {
	b.Helper()
	leader := agents.Settled(b, all, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := l.Probe(ctx, l.Client(), netip.AddrPortFrom(netip.MustParseAddr(vip4), echoPort), 5*time.Millisecond)
	if _, err := p.WaitReply(ctx, leader.NS, time.Now()); err != nil {
		b.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	move(leader)
	if _, err := p.WaitReply(ctx, "", start); err != nil {
		b.Fatal(err)
	}
	var gap time.Duration
	for {
		res := p.Result()
		sw := res.Switches()
		if len(sw) > 0 {
			gap = sw[len(sw)-1].Gap
			break
		}
		if ctx.Err() != nil {
			b.Fatalf("the VIP never moved away from %s", leader.Name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.Stop()
	restore(leader)
	return gap
}

// BenchmarkControlPlaneFailoverLinkCut: the leader's cable is pulled. The
// agents' flags can be changed with RAFTVIP_BENCH_AGENT_FLAGS, to compare
// timeouts against the defaults.
func BenchmarkControlPlaneFailoverLinkCut(b *testing.B) {
	l := lab.New(b, 3, lab.WithoutIPv6())
	l.StartEcho(echoPort)
	all := agents.StartLab(b, l, agents.LabOptions{VIPs: []string{vip4}, Extra: append([]string{"--log-level=info"}, strings.Fields(os.Getenv("RAFTVIP_BENCH_AGENT_FLAGS"))...)})
	var gaps []time.Duration
	for range benchTrials() {
		gaps = append(gaps, failoverGap(b, l, all,
			func(a *agents.Agent) { l.CutLink(a.Index) },
			func(a *agents.Agent) { l.RestoreLink(a.Index) }))
	}
	report(b, "link-cut-failover", gaps)
}

// BenchmarkControlPlaneGracefulHandover: the leader gets SIGTERM and is restarted.
func BenchmarkControlPlaneGracefulHandover(b *testing.B) {
	l := lab.New(b, 3, lab.WithoutIPv6())
	l.StartEcho(echoPort)
	all := agents.StartLab(b, l, agents.LabOptions{VIPs: []string{vip4}, Extra: []string{"--log-level=info"}})
	bin := agents.Binary(b)
	var gaps []time.Duration
	for range benchTrials() {
		gaps = append(gaps, failoverGap(b, l, all,
			func(a *agents.Agent) { _ = a.Proc.Stop() },
			func(a *agents.Agent) { a.Start(bin) }))
	}
	report(b, "graceful-gap", gaps)
}

// BenchmarkSpuriousElectionsUnderCPUStress keeps every CPU busy inside the lab for
// RAFTVIP_BENCH_STRESS (default 5m) and counts leader changes nobody asked for.
func BenchmarkSpuriousElectionsUnderCPUStress(b *testing.B) {
	d := 5 * time.Minute
	if v, err := time.ParseDuration(os.Getenv("RAFTVIP_BENCH_STRESS")); err == nil {
		d = v
	}
	l := lab.New(b, 3, lab.WithoutIPv6())
	all := agents.StartLab(b, l, agents.LabOptions{VIPs: []string{vip4}, Extra: append([]string{"--log-level=info"}, strings.Fields(os.Getenv("RAFTVIP_BENCH_AGENT_FLAGS"))...)})
	leader := agents.Leader(b, all, 20*time.Second)
	ctx := context.Background()
	before, err := leader.Status(ctx)
	if err != nil {
		b.Fatal(err)
	}
	l.BusyCPUs(d)
	time.Sleep(d)
	cur := agents.Leader(b, all, 20*time.Second)
	after, err := cur.Status(ctx)
	if err != nil {
		b.Fatal(err)
	}
	changes := after.Term - before.Term
	b.ReportMetric(float64(changes), "spurious-elections")
	fmt.Printf("spurious elections during %s of CPU stress: %d (term %d -> %d, leader %s -> %s)\n", d, changes, before.Term, after.Term, leader.Name, cur.Name)
}
