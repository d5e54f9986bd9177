package l2_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/lab"
)

// echoFrom probes the VIP from the client until a reply from node's namespace
// arrives; it fails the test if none does.
func echoFrom(t testing.TB, l *lab.Lab, ip netip.Addr, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := l.Probe(ctx, l.Client(), netip.AddrPortFrom(ip, echoPort), 10*time.Millisecond)
	defer p.Stop()
	if _, err := p.WaitReply(ctx, ns, time.Now()); err != nil {
		t.Fatalf("UDP echo via %s from %s: %v", ip, ns, err)
	}
}

// held is the VIPs an agent has on its interface.
func held(t testing.TB, a *agents.Agent) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := a.Status(ctx)
	if err != nil {
		t.Fatalf("status of %s: %v", a.Name, err)
	}
	return st.HeldVIPs
}

// nsOf maps a lab node namespace back to its node name.
func nsOf(l *lab.Lab, ns string) string {
	if i := l.NodeIndex(ns); i >= 0 {
		return nodeName(i)
	}
	return ns
}
