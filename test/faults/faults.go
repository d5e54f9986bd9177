// Package faults puts one fault at a time on a lab node's agent and records
// what a client on the segment saw of the VIPs that node announced: every ARP
// and NDP frame, and a UDP probe of each VIP. The control-plane and Service VIP
// fault matrices, in tests and in benchmarks, share it, so "no request answered
// by two MACs" and "the outage the client saw" mean the same thing in all four.
package faults

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/lab"
)

const (
	// SprayEvery is how often the client asks for each VIP (ARP or NDP) during a
	// fault: a node that answers while another one does shows up as a request
	// answered by two MACs.
	SprayEvery = 20 * time.Millisecond
	// ProbeEvery is how often the client probes each VIP over UDP.
	ProbeEvery = 5 * time.Millisecond
	// moveDeadline bounds the wait for a VIP to answer from another node: a
	// failure deadline on a loaded box, never an expectation.
	moveDeadline = 60 * time.Second
)

// Fault is one kind of fault on a node's agent: what starts it, how long it
// lasts once the VIPs have moved, and what ends it.
type Fault struct {
	Name   string
	Down   time.Duration
	Inject func(a *agents.Agent) error
	Heal   func(a *agents.Agent) error
}

// Kinds is the fault matrix of a lab: the node's cable cut, the node cut off
// from every other node while the client still reaches it, its agent killed and
// restarted from bin after killDown (a crash-looping static pod), and its agent
// frozen for stopDown (a throttled cgroup or a stalled VM).
func Kinds(l *lab.Lab, bin string, killDown, stopDown time.Duration) []Fault {
	return []Fault{
		{"link-cut", time.Second,
			func(a *agents.Agent) error { l.CutLink(a.Index); return nil },
			func(a *agents.Agent) error { l.RestoreLink(a.Index); return nil }},
		{"partition", time.Second,
			func(a *agents.Agent) error { l.Partition(a.Index); return nil },
			func(*agents.Agent) error { l.Heal(); return nil }},
		{"sigkill", killDown,
			func(a *agents.Agent) error { a.Proc.Kill(); return nil },
			func(a *agents.Agent) error { a.Start(bin); return nil }},
		{"sigstop", stopDown,
			func(a *agents.Agent) error { return a.Proc.Signal(syscall.SIGSTOP) },
			func(a *agents.Agent) error { return a.Proc.Signal(syscall.SIGCONT) }},
	}
}

// Result is what the client saw of one VIP across one fault.
type Result struct {
	VIP netip.Addr
	// Answers are the client's ARP or NDP requests and who answered each.
	Answers lab.Answers
	// Order is the MACs that claimed the VIP, in turn; Speakers is set when one
	// claimed it again after another had taken over.
	Order    []string
	Speakers error
	// Gap is the client's UDP outage across the move away from the faulted node.
	Gap time.Duration
	// Lost counts UDP probes never answered.
	Lost, Sent int
	// Mentions are the capture's lines about the VIP, for a failure message.
	Mentions []string
}

// Check returns why r breaks the fault matrix's claims, or nil: a request
// answered by two MACs, a MAC that claimed the VIP again after another took
// over, a client that saw no requests answered at all (the capture read
// nothing, so it could not have seen a double answer either), or an outage
// longer than budget.
func (r Result) Check(budget time.Duration) error {
	var errs []error
	if r.Answers.Requests == 0 || len(r.Answers.Replies) == 0 {
		errs = append(errs, fmt.Errorf("the capture shows %d requests and %d answers for %s", r.Answers.Requests, len(r.Answers.Replies), r.VIP))
	}
	if n := len(r.Answers.Double); n > 0 {
		errs = append(errs, fmt.Errorf("%d of %d requests for %s answered by two MACs", n, r.Answers.Requests, r.VIP))
	}
	if r.Speakers != nil {
		errs = append(errs, fmt.Errorf("%s: %w", r.VIP, r.Speakers))
	}
	if r.Gap > budget {
		errs = append(errs, fmt.Errorf("the client's outage of %s lasted %s, over the budget of %s", r.VIP, r.Gap.Round(time.Millisecond), budget))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w; capture:\n%s", errors.Join(errs...), strings.Join(r.Mentions, "\n"))
}

// watch is the client's view of one VIP while a fault runs.
type watch struct {
	vip   netip.Addr
	probe *lab.Prober
	stop  func()
}

// Run watches vips, which owner announces, from the client; puts f on owner
// once owner answers them all; waits until another node answers every one;
// keeps the fault for f.Down; heals it; and keeps watching for settle, so that
// whatever the healed node says is captured too. It fails tb when a VIP never
// answers from owner first or never moves away from it.
func Run(tb lab.TB, l *lab.Lab, owner *agents.Agent, vips []netip.Addr, port uint16, f Fault, settle time.Duration) []Result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), moveDeadline+f.Down+settle)
	defer cancel()
	count := int((moveDeadline + f.Down + settle) / SprayEvery)
	capture := l.Capture(l.Client(), lab.Iface, "arp or icmp6")
	ws := make([]watch, 0, len(vips))
	defer func() {
		for _, w := range ws {
			w.stop()
			w.probe.Stop()
		}
		capture.Stop()
	}()
	for _, v := range vips {
		w := watch{vip: v}
		if v.Is4() {
			p := l.Start(l.Client(), "arping-"+v.String(), "arping", "-q", "-i", lab.Iface, "-W", strconv.FormatFloat(SprayEvery.Seconds(), 'f', -1, 64), "-c", strconv.Itoa(count), v.String())
			w.stop = p.Kill
		} else {
			w.stop = l.Solicit(v, SprayEvery, count).Stop
		}
		w.probe = l.Probe(ctx, l.Client(), netip.AddrPortFrom(v, port), ProbeEvery)
		ws = append(ws, w)
		if _, err := w.probe.WaitReply(ctx, owner.NS, time.Now()); err != nil {
			tb.Fatalf("before %s of %s: %s: %v", f.Name, owner.Name, v, err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if err := f.Inject(owner); err != nil {
		tb.Fatalf("%s of %s: %v", f.Name, owner.Name, err)
	}
	for _, w := range ws {
		if _, err := w.probe.WaitReplyThat(ctx, start, func(r lab.ProbeReply) bool { return r.Node != owner.NS }); err != nil {
			_ = f.Heal(owner)
			tb.Fatalf("%s of %s: %s never answered from another node: %v", f.Name, owner.Name, w.vip, err)
		}
	}
	time.Sleep(f.Down)
	if err := f.Heal(owner); err != nil {
		tb.Fatalf("healing %s of %s: %v", f.Name, owner.Name, err)
	}
	time.Sleep(settle)
	out := make([]Result, 0, len(ws))
	probes := make([]lab.ProbeResult, len(ws))
	for i, w := range ws {
		w.stop()
		probes[i] = w.probe.Stop()
	}
	lines := capture.Stop()
	for i, w := range ws {
		client := l.ClientIP()
		if w.vip.Is6() {
			client = l.ClientIP6()
		}
		r := Result{VIP: w.vip, Answers: lab.AnswersTo(lines, w.vip, client), Sent: probes[i].Sent, Lost: probes[i].Lost(), Mentions: lab.Mentions(lines, w.vip)}
		r.Order, r.Speakers = lab.SingleSpeaker(lab.Claims(lines, w.vip))
		for _, s := range probes[i].Switches() {
			if s.From == owner.NS {
				r.Gap = s.Gap
				break
			}
		}
		out = append(out, r)
	}
	return out
}
