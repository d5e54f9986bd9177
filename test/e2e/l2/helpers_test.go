package l2_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/lab"
)

// neighIs checks the client's neighbour entry for ip without touching it.
func neighIs(l *lab.Lab, ip netip.Addr, want net.HardwareAddr) error {
	mac, state, err := l.Neigh(l.Client(), ip)
	if err != nil {
		return err
	}
	if mac.String() != want.String() {
		return fmt.Errorf("client's neighbour entry for %s is %s (%s), want %s", ip, mac, state, want)
	}
	return nil
}

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

// claim is one packet seen on the wire in which a node says it has a VIP: an ARP
// reply or gratuitous ARP (IPv4), or a neighbour advertisement (IPv6).
type claim struct {
	line string
	mac  string
}

var (
	arpReply = regexp.MustCompile(`^\S+ (\S+) > \S+, .*Reply (\S+) is-at (\S+),`)
	arpGrat  = regexp.MustCompile(`^\S+ (\S+) > \S+, .*Request who-has (\S+) tell (\S+),`)
	ndpAdv   = regexp.MustCompile(`^\S+ (\S+) > \S+, .*neighbor advertisement, tgt is (\S+?),`)
)

// claims picks from tcpdump -e lines every packet in which some node claims vip.
func claims(lines []string, vip netip.Addr) []claim {
	var out []claim
	v := vip.String()
	for _, ln := range lines {
		if m := arpReply.FindStringSubmatch(ln); m != nil && m[2] == v {
			out = append(out, claim{line: ln, mac: strings.ToLower(m[3])})
			continue
		}
		if m := arpGrat.FindStringSubmatch(ln); m != nil && m[2] == v && m[3] == v {
			out = append(out, claim{line: ln, mac: strings.ToLower(m[1])})
			continue
		}
		if m := ndpAdv.FindStringSubmatch(ln); m != nil && m[2] == v {
			out = append(out, claim{line: ln, mac: strings.ToLower(m[1])})
		}
	}
	return out
}

// singleSpeaker returns the order in which MACs claimed the VIP, or an error when a
// MAC claims it again after another MAC started claiming it: ownership as seen by
// the client must move from one node to the next, never overlap or flap back.
func singleSpeaker(cs []claim) ([]string, error) {
	var order []string
	done := map[string]bool{}
	for _, c := range cs {
		if len(order) > 0 && order[len(order)-1] == c.mac {
			continue
		}
		if done[c.mac] {
			var b strings.Builder
			for _, x := range cs {
				b.WriteString("\n  " + x.line)
			}
			return order, fmt.Errorf("%s claimed the VIP again after %s took it over: two nodes answered%s", c.mac, order[len(order)-1], b.String())
		}
		if len(order) > 0 {
			done[order[len(order)-1]] = true
		}
		order = append(order, c.mac)
	}
	return order, nil
}

// nsOf maps a lab node namespace back to its node name.
func nsOf(l *lab.Lab, ns string) string {
	if i := l.NodeIndex(ns); i >= 0 {
		return nodeName(i)
	}
	return ns
}
