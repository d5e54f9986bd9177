package vip_test

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

const (
	echoPort = 9000
	vip4     = "198.51.100.100"
	vip6     = "2001:db8:100::100"
)

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

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

// ping sends one ICMP echo from the client.
func ping(l *lab.Lab, ip netip.Addr) error {
	_, err := l.Exec(l.Client(), "ping", "-n", "-c", "1", "-W", "1", ip.String())
	return err
}

// echoFrom sends UDP probes to the VIP until a reply from node arrives.
func echoFrom(t *testing.T, l *lab.Lab, ip netip.Addr, node string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := l.Probe(ctx, l.Client(), netip.AddrPortFrom(ip, echoPort), 10*time.Millisecond)
	defer p.Stop()
	if _, err := p.WaitReply(ctx, node, time.Now()); err != nil {
		t.Fatalf("UDP echo via %s: %v", ip, err)
	}
}

func held(t *testing.T, a *agents.Agent) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := a.Status(ctx)
	if err != nil {
		t.Fatalf("status of %s: %v", a.Name, err)
	}
	return st.HeldVIPs
}

// arpAnswer is one ARP reply (or gratuitous announcement) for a VIP seen on the wire.
type arpAnswer struct {
	line string
	mac  string
}

var (
	arpReply = regexp.MustCompile(`^\S+ (\S+) > \S+, .*Reply (\S+) is-at (\S+),`)
	arpGrat  = regexp.MustCompile(`^\S+ (\S+) > \S+, .*Request who-has (\S+) tell (\S+),`)
)

// arpAnswers picks from tcpdump -e lines every packet in which some node claims
// vip: replies "vip is-at MAC" and gratuitous requests "who-has vip tell vip".
func arpAnswers(lines []string, vip string) []arpAnswer {
	var out []arpAnswer
	for _, ln := range lines {
		if m := arpReply.FindStringSubmatch(ln); m != nil && m[2] == vip {
			out = append(out, arpAnswer{line: ln, mac: strings.ToLower(m[3])})
			continue
		}
		if m := arpGrat.FindStringSubmatch(ln); m != nil && m[2] == vip && m[3] == vip {
			out = append(out, arpAnswer{line: ln, mac: strings.ToLower(m[1])})
		}
	}
	return out
}

// checkSingleSpeaker fails when, in arrival order, a MAC claims the VIP after
// another MAC has started claiming it and then claims it again: ownership as seen
// by the client must move from one node to the next, never overlap or flap back.
func checkSingleSpeaker(t *testing.T, answers []arpAnswer) []string {
	t.Helper()
	var order []string
	done := map[string]bool{}
	for _, a := range answers {
		if len(order) > 0 && order[len(order)-1] == a.mac {
			continue
		}
		if done[a.mac] {
			for _, x := range answers {
				t.Log(x.line)
			}
			t.Fatalf("%s claimed the VIP again after %s took it over: two nodes answered", a.mac, order[len(order)-1])
		}
		if len(order) > 0 {
			done[order[len(order)-1]] = true
		}
		order = append(order, a.mac)
	}
	return order
}
