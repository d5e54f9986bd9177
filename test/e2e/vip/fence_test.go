package vip_test

import (
	"net/netip"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/lab"
)

// sprayEvery is how often the client asks for the VIP during a fault; a node that
// answers while another one does shows up as interleaved claims.
const sprayEvery = 20 * time.Millisecond

// TestDeadOrFrozenLeaderGoesSilent checks, from the client's capture, that the
// control-plane VIP is never answered by two nodes when the leader's agent is
// frozen (SIGSTOP) or killed (SIGKILL, kept down for 30 s): the agent does nothing
// in either case, so the kernel fence must stop its node answering before the new
// leader speaks, over ARP and over NDP.
func TestDeadOrFrozenLeaderGoesSilent(t *testing.T) {
	faults := []struct {
		name  string
		down  time.Duration
		fault func(a *agents.Agent) error
		heal  func(a *agents.Agent, bin string) error
	}{
		{"SIGSTOP", 2 * time.Second,
			func(a *agents.Agent) error { return a.Proc.Signal(syscall.SIGSTOP) },
			func(a *agents.Agent, _ string) error { return a.Proc.Signal(syscall.SIGCONT) }},
		{"SIGKILL", 30 * time.Second,
			func(a *agents.Agent) error { a.Proc.Kill(); return nil },
			func(a *agents.Agent, bin string) error { a.Start(bin); return nil }},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			l := lab.New(t, 3)
			all := agents.StartLab(t, l, agents.LabOptions{VIPs: []string{vip4, vip6}})
			leader := agents.Leader(t, all, 20*time.Second)
			v4, v6 := netip.MustParseAddr(vip4), netip.MustParseAddr(vip6)
			for _, v := range []netip.Addr{v4, v6} {
				lab.Eventually(t, 10*time.Second, "ping "+v.String(), func() error { return ping(l, v) })
			}
			sprays := int((f.down + 15*time.Second) / sprayEvery)
			capture := l.Capture(l.Client(), lab.Iface, "arp or icmp6")
			arping := l.Start(l.Client(), "arping", "arping", "-q", "-i", lab.Iface, "-W", "0.02", "-c", strconv.Itoa(sprays), vip4)
			ns := l.Solicit(v6, sprayEvery, sprays)
			time.Sleep(300 * time.Millisecond)

			if err := f.fault(leader); err != nil {
				t.Fatal(err)
			}
			next := agents.Leader(t, all, 20*time.Second, leader)
			for _, v := range []netip.Addr{v4, v6} {
				lab.Eventually(t, 10*time.Second, "client follows the new leader for "+v.String(), func() error {
					return l.NeighIs(v, l.NodeMAC(next.Index))
				})
			}
			time.Sleep(f.down)
			if err := f.heal(leader, agents.Binary(t)); err != nil {
				t.Fatal(err)
			}
			// The old leader is back as a follower; it must stay silent.
			time.Sleep(2 * time.Second)
			arping.Kill()
			ns.Stop()
			lines := capture.Stop()
			for _, v := range []netip.Addr{v4, v6} {
				order, err := lab.SingleSpeaker(lab.Claims(lines, v))
				if err != nil {
					t.Fatalf("%s after %s of the leader: %v", v, f.name, err)
				}
				old, nw := l.NodeMAC(leader.Index).String(), l.NodeMAC(next.Index).String()
				if len(order) < 2 || order[0] != old || order[len(order)-1] != nw {
					t.Fatalf("%s: answers came from %v; want the old leader %s, then the new one %s", v, order, old, nw)
				}
			}
		})
	}
}
