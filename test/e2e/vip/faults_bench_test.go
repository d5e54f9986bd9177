package vip_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/lab"
)

// benchFault is one kind of fault on the leader: what starts it, how long it
// lasts, and what ends it.
type benchFault struct {
	name  string
	down  time.Duration
	fault func(a *agents.Agent)
	heal  func(a *agents.Agent)
}

// BenchmarkFaultMatrix puts RAFTVIP_BENCH_FAULTS (default 100) faults, drawn at
// random from link cut, partition from the other voters (the client still
// reaches it), SIGKILL (restarted after 1 s) and SIGSTOP (2 s), on the leader
// holding the control-plane VIP, one after another from a settled cluster. A
// client ARPs for the VIP every 20 ms and probes it over UDP every 5 ms
// throughout each fault and its healing. It prints, per kind, the p50 and max
// gap between the old leader's last reply and the new one's first, and the ARP
// requests answered by two MACs over all faults. RAFTVIP_BENCH_SEED repeats a
// draw; RAFTVIP_BENCH_AGENT_FLAGS changes the agents' flags.
func BenchmarkFaultMatrix(b *testing.B) {
	n := 100
	if v, err := strconv.Atoi(os.Getenv("RAFTVIP_BENCH_FAULTS")); err == nil && v > 0 {
		n = v
	}
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("RAFTVIP_BENCH_SEED"), 10, 64); err == nil {
		seed = v
	}
	l := lab.New(b, 3, lab.WithoutIPv6())
	l.StartEcho(echoPort)
	all := agents.StartLab(b, l, agents.LabOptions{VIPs: []string{vip4}, Extra: append([]string{"--log-level=info"}, strings.Fields(os.Getenv("RAFTVIP_BENCH_AGENT_FLAGS"))...)})
	bin := agents.Binary(b)
	faults := []benchFault{
		{"link-cut", time.Second, func(a *agents.Agent) { l.CutLink(a.Index) }, func(a *agents.Agent) { l.RestoreLink(a.Index) }},
		{"partition", time.Second, func(a *agents.Agent) { l.Partition(a.Index) }, func(*agents.Agent) { l.Heal() }},
		{"sigkill", time.Second, func(a *agents.Agent) { a.Proc.Kill() }, func(a *agents.Agent) { a.Start(bin) }},
		{"sigstop", 2 * time.Second, func(a *agents.Agent) { signal(b, a, syscall.SIGSTOP) }, func(a *agents.Agent) { signal(b, a, syscall.SIGCONT) }},
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	gaps := map[string][]time.Duration{}
	requests, doubles := 0, 0
	for range n {
		f := faults[rng.IntN(len(faults))]
		gap, asked, double := injectFault(b, l, all, f)
		gaps[f.name] = append(gaps[f.name], gap)
		requests += asked
		doubles += double
	}
	fmt.Printf("fault matrix, %d faults (seed %d): %d of %d ARP requests answered by two MACs\n", n, seed, doubles, requests)
	b.ReportMetric(float64(doubles), "double-answers")
	for _, f := range faults {
		if len(gaps[f.name]) > 0 {
			report(b, f.name+"-gap", gaps[f.name])
		}
	}
}

// injectFault runs one fault on the leader of a settled cluster and returns the
// client's reply gap, the ARP requests it sent and how many two MACs answered.
func injectFault(b *testing.B, l *lab.Lab, all []*agents.Agent, f benchFault) (time.Duration, int, int) {
	b.Helper()
	leader := agents.Settled(b, all, 30*time.Second)
	vip := netip.MustParseAddr(vip4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sprays := int((f.down + 3*time.Second) / sprayEvery)
	capture := l.Capture(l.Client(), lab.Iface, "arp")
	arping := l.Start(l.Client(), "arping", "arping", "-q", "-i", lab.Iface, "-W", "0.02", "-c", strconv.Itoa(sprays), vip4)
	p := l.Probe(ctx, l.Client(), netip.AddrPortFrom(vip, echoPort), 5*time.Millisecond)
	if _, err := p.WaitReply(ctx, leader.NS, time.Now()); err != nil {
		b.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	f.fault(leader)
	if _, err := p.WaitReply(ctx, "", start); err != nil {
		b.Fatalf("%s of %s: %v", f.name, leader.Name, err)
	}
	time.Sleep(f.down)
	f.heal(leader)
	// The old leader is back as a follower; whatever it says now is captured too.
	time.Sleep(time.Second)
	res := p.Stop()
	arping.Kill()
	lines := capture.Stop()
	var gap time.Duration
	for _, s := range res.Switches() {
		if s.From == leader.NS {
			gap = s.Gap
			break
		}
	}
	if gap == 0 {
		b.Fatalf("%s of %s: the VIP never moved away from it: %+v", f.name, leader.Name, res.Switches())
	}
	ans := lab.ARPAnswers(lines, vip, l.ClientIP())
	if len(ans.Double) > 0 {
		b.Logf("%s of %s: requests %v answered twice:\n%s", f.name, leader.Name, ans.Double, strings.Join(lab.Mentions(lines, vip), "\n"))
	}
	return gap, ans.Requests, len(ans.Double)
}

func signal(b *testing.B, a *agents.Agent, sig syscall.Signal) {
	b.Helper()
	if err := a.Proc.Signal(sig); err != nil {
		b.Fatalf("%s to %s: %v", sig, a.Name, err)
	}
}
