package l2_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/cluster"
	"github.com/raftvip/raftvip/test/lab"
)

const (
	// handoffFence is the agents' --fence-timeout here (the default): a frozen old
	// owner's kernel lease ends within it.
	handoffFence = 150 * time.Millisecond
	// handoffNodeDown is longer than the default so that a frozen owner is still
	// alive to the leader when the release goes unconfirmed: the move must come from
	// the fence running out, not from the owner being called down.
	handoffNodeDown = 6 * time.Second
	// drainGapBudget bounds the client's outage across a drain: a failure deadline,
	// generous for a loaded box, never an expectation.
	drainGapBudget = 3 * time.Second
)

// movableVIP picks an IPv4 VIP among vips owned by a node that is neither the leader
// nor in skip, so freezing or stopping that node moves a Service VIP and nothing else.
func (e *env) movableVIP(t *testing.T, vips []netip.Addr, skip ...string) (netip.Addr, *agents.Agent) {
	t.Helper()
	st := e.state(t)
	leader := e.leader(t)
	for _, v := range vips {
		o, ok := st.Owners[v.String()]
		if !ok || !v.Is4() || o.Node == leader.Name || o.Releasing || contains(skip, o.Node) {
			continue
		}
		return v, e.byName(o.Node)
	}
	t.Fatalf("no IPv4 VIP owned by a follower outside %v: %+v", skip, st.Owners)
	return netip.Addr{}, nil
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// watch starts what the client records about vip during a move: a capture of ARP,
// an ARP request every 20 ms, and a UDP probe every 5 ms; it returns once the
// owner answers both.
func (e *env) watch(t *testing.T, vip netip.Addr, owner *agents.Agent) (*lab.Capture, *lab.Proc, *lab.Prober) {
	t.Helper()
	l := e.l
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	capture := l.Capture(l.Client(), lab.Iface, "arp")
	spray := arpSpray(l, vip)
	p := l.Probe(t.Context(), l.Client(), netip.AddrPortFrom(vip, echoPort), 5*time.Millisecond)
	if _, err := p.WaitReply(ctx, owner.NS, time.Now()); err != nil {
		t.Fatal(err)
	}
	mac := l.NodeMAC(owner.Index).String()
	if _, ok := capture.WaitFor(ctx, func(ln string) bool {
		cs := lab.Claims([]string{ln}, vip)
		return len(cs) == 1 && cs[0].MAC == mac
	}); !ok {
		t.Fatalf("the owner never answered the client's ARP requests for %s", vip)
	}
	return capture, spray, p
}

// moveLine is the line of any agent's log in which the leader committed vip's
// move from old to node, or "" when there is none.
func (e *env) moveLine(vip netip.Addr, old, node string) string {
	for _, a := range e.agents {
		for _, ln := range strings.Split(a.Proc.Log(), "\n") {
			if strings.Contains(ln, `msg="VIP owner changed"`) && strings.Contains(ln, "vip="+vip.String()+" ") &&
				strings.Contains(ln, "from="+old+" ") && strings.Contains(ln, "to="+node+" ") {
				return ln
			}
		}
	}
	return ""
}

// releaseRequested reports whether some agent's log says the leader asked old to release vip.
func (e *env) releaseRequested(vip netip.Addr, old string) bool {
	for _, a := range e.agents {
		for _, ln := range strings.Split(a.Proc.Log(), "\n") {
			if strings.Contains(ln, `msg="VIP release requested`) && strings.Contains(ln, "vip="+vip.String()+" ") && strings.Contains(ln, "from="+old+" ") {
				return true
			}
		}
	}
	return false
}

// timeOfDay puts t on the capture's clock: tcpdump prints local time of day only.
func timeOfDay(t time.Time) time.Time {
	t = t.Local()
	return time.Date(0, 1, 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// firstClaim is when mac first claimed vip (a reply or a gratuitous ARP) on the
// capture's clock.
func firstClaim(lines []string, vip netip.Addr, mac string) (time.Time, bool) {
	for _, c := range lab.Claims(lines, vip) {
		if c.MAC != mac {
			continue
		}
		at, err := time.Parse("15:04:05.000000", strings.Fields(c.Line)[0])
		return at, err == nil
	}
	return time.Time{}, false
}

// TestPlannedMoves: a service VIP's planned move is two-phase. The old owner is
// asked to release; the new owner is committed only once it confirmed, or once
// the release is older than the old owner's fence. Drained on SIGTERM, the owner
// confirms and the client sees one MAC answer, then the other; frozen by SIGSTOP,
// the owner never confirms and the new owner speaks only after the fence.
func TestPlannedMoves(t *testing.T) {
	e := startEnv(t, []string{mainPool}, fmt.Sprintf("--node-down-timeout=%s", handoffNodeDown))
	l := e.l
	e.cp.CreatePod(t, cluster.Pod{Namespace: appNS, Name: "web-1", Node: "node0", IPs: []string{"10.244.0.10"},
		Labels: map[string]string{"app": "web"}, Ready: true})
	names := []string{"h0", "h1", "h2", "h3", "h4", "h5"}
	for _, n := range names {
		e.createServices(t, service(n, false, v4Only, corev1.IPFamilyPolicySingleStack, map[string]string{"app": "web"}))
	}
	var vips []netip.Addr
	for _, n := range names {
		vips = append(vips, e.ingress(t, n, 1)...)
	}
	lab.Eventually(t, waitLong, "an owner for every VIP", func() error {
		st := e.state(t)
		for _, v := range vips {
			if _, ok := st.Owners[v.String()]; !ok {
				return fmt.Errorf("%s has no owner", v)
			}
		}
		return nil
	})
	client := l.ClientIP()

	if !t.Run("a frozen owner: the new owner speaks only after the fence", func(t *testing.T) {
		v, old := e.movableVIP(t, vips)
		capture, spray, p := e.watch(t, v, old)
		defer p.Stop()
		if err := old.Proc.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		frozen := time.Now()
		// A frozen agent's status server does not answer: leave it out of the
		// leader look-ups until it is thawed.
		e.away[old.Index] = true
		thawed := false
		thaw := func() {
			if !thawed {
				thawed = true
				if err := old.Proc.Signal(syscall.SIGCONT); err != nil {
					t.Error(err)
				}
				delete(e.away, old.Index)
			}
		}
		defer thaw()
		// A planned move: the frozen node is labelled out of announcing.
		e.setExcluded(t, true, old.Index)
		defer e.setExcluded(t, false, old.Index)
		o := e.ownerOf(t, v, "moved off the frozen node", func(o raftstore.Owner) bool { return o.Node != old.Name })
		moved := time.Since(frozen)
		newOwner := e.byName(o.Node)
		ctx, cancel := context.WithTimeout(t.Context(), waitLong)
		defer cancel()
		if _, err := p.WaitReply(ctx, newOwner.NS, time.Now()); err != nil {
			t.Fatal(err)
		}
		if !e.releaseRequested(v, old.Name) {
			t.Errorf("no agent logged a release of %s from %s: the move skipped the first phase", v, old.Name)
		}
		line := e.moveLine(v, old.Name, o.Node)
		if !strings.Contains(line, `handoff="release older than the fence"`) {
			t.Errorf("the move of %s should wait out the unconfirmed release; leader logged %q", v, line)
		}
		thaw()
		waitRejoined(t, old)
		time.Sleep(time.Second)
		spray.Kill()
		res := p.Stop()
		lines := capture.Stop()
		ans := lab.AnswersTo(lines, v, client)
		if len(ans.Double) > 0 {
			t.Errorf("%d of %d ARP requests for %s answered by two MACs; capture:\n%s", len(ans.Double), ans.Requests, v, strings.Join(lab.Mentions(lines, v), "\n"))
		}
		if _, err := lab.SingleSpeaker(lab.Claims(lines, v)); err != nil {
			t.Error(err)
		}
		newMAC := l.NodeMAC(newOwner.Index).String()
		first, ok := firstClaim(lines, v, newMAC)
		if !ok {
			t.Fatalf("the new owner %s never claimed %s on the wire", o.Node, v)
		}
		if after := first.Sub(timeOfDay(frozen)); after < handoffFence {
			t.Errorf("the new owner first claimed %s %s after the old one froze, before its fence of %s ran out", v, after, handoffFence)
		} else {
			t.Logf("old owner frozen; move committed after %s; new owner's first claim %s after the freeze (fence %s)", moved.Round(time.Millisecond), after.Round(time.Millisecond), handoffFence)
		}
		if h := old.Held(t); contains(h, v.String()) {
			t.Errorf("%s holds %s again after it was thawed", old.Name, v)
		}
		if sw := res.Switches(); len(sw) != 1 {
			t.Errorf("the UDP client saw the answering node change %d times: %+v", len(sw), sw)
		} else {
			t.Logf("UDP gap across the frozen owner's move: %s (%d of %d probes lost)", sw[0].Gap.Round(time.Millisecond), res.Lost(), res.Sent)
		}
	}) {
		return
	}

	t.Run("a drained owner confirms its release before the new owner speaks", func(t *testing.T) {
		v, old := e.movableVIP(t, vips)
		capture, spray, p := e.watch(t, v, old)
		defer p.Stop()
		start := time.Now()
		if err := old.Proc.Stop(); err != nil {
			t.Fatalf("drained agent: %v", err)
		}
		stopped := time.Since(start)
		o := e.ownerOf(t, v, "moved off the drained node", func(o raftstore.Owner) bool { return o.Node != old.Name })
		newOwner := e.byName(o.Node)
		ctx, cancel := context.WithTimeout(t.Context(), waitLong)
		defer cancel()
		if _, err := p.WaitReply(ctx, newOwner.NS, start); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		spray.Kill()
		res := p.Stop()
		lines := capture.Stop()
		if !e.releaseRequested(v, old.Name) {
			t.Errorf("no agent logged a release of %s from %s: the drain skipped the first phase", v, old.Name)
		}
		line := e.moveLine(v, old.Name, o.Node)
		if !strings.Contains(line, `handoff="release confirmed"`) && !strings.Contains(line, `handoff="release older than the fence"`) {
			t.Errorf("the drain's move of %s was not a planned one: leader logged %q", v, line)
		}
		ans := lab.AnswersTo(lines, v, client)
		if len(ans.Double) > 0 {
			t.Errorf("%d of %d ARP requests for %s answered by two MACs; capture:\n%s", len(ans.Double), ans.Requests, v, strings.Join(lab.Mentions(lines, v), "\n"))
		}
		if _, err := lab.SingleSpeaker(lab.Claims(lines, v)); err != nil {
			t.Error(err)
		}
		last, first, ok := ans.Switch()
		if !ok {
			t.Fatalf("the client's ARP requests for %s never got an answer from a new MAC: %+v", v, ans.Replies)
		}
		arpGap := first.At.Sub(last.At)
		sw := res.Switches()
		if len(sw) != 1 {
			t.Fatalf("the UDP client saw the answering node change %d times: %+v", len(sw), sw)
		}
		if sw[0].Gap > drainGapBudget {
			t.Errorf("UDP gap across the drain %s, over the budget %s", sw[0].Gap, drainGapBudget)
		}
		via := line[strings.Index(line, "handoff="):]
		t.Logf("drain of %s (SIGTERM): ARP answers moved %s -> %s with a gap of %s; UDP gap %s (%d of %d probes lost); %d requests, %d double-answered; agent stopped after %s; leader: %s",
			old.Name, last.MAC, first.MAC, arpGap.Round(time.Millisecond), sw[0].Gap.Round(time.Millisecond), res.Lost(), res.Sent,
			ans.Requests, len(ans.Double), stopped.Round(time.Millisecond), via)
	})
}
