package vip_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/faults"
	"github.com/raftvip/raftvip/test/lab"
)

// cpGapBudget bounds the client's outage of the control-plane VIP across any
// fault of the matrix: a failure deadline for a loaded two-core box running
// four labs at once, about ten times the measured worst case (an election after
// the leader-loss timeout, and a frozen or cut-off leader's fence). The
// benchmark measures the real gaps.
const cpGapBudget = 2 * time.Second

// TestControlPlaneFaultMatrix puts each fault of the matrix on the leader
// holding the control-plane VIP — link cut, partition from the other voters
// (the client still reaches it), SIGKILL with the agent kept down for 30 s, and
// SIGSTOP for 2 s — and checks, from the client's capture of ARP and NDP, that
// no request for the IPv4 or the IPv6 VIP is answered by two MACs, that the
// VIP moves from the old leader to the new one and never back, and that the
// client's UDP outage stays within the budget. A killed or frozen agent does
// nothing, so it is the kernel fence that must silence its node before the new
// leader speaks.
func TestControlPlaneFaultMatrix(t *testing.T) {
	bin := agents.Binary(t)
	v4, v6 := netip.MustParseAddr(vip4), netip.MustParseAddr(vip6)
	for _, kind := range []string{"link-cut", "partition", "sigkill", "sigstop"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			l := lab.New(t, 3)
			l.StartEcho(echoPort)
			all := agents.StartLab(t, l, agents.LabOptions{VIPs: []string{vip4, vip6}})
			f := pick(faults.Kinds(l, bin, 30*time.Second, 2*time.Second), kind)
			leader := agents.Leader(t, all, 20*time.Second)
			rs := faults.Run(t, l, leader, []netip.Addr{v4, v6}, echoPort, f, 2*time.Second)
			next := agents.Leader(t, all, 20*time.Second)
			old, nw := l.NodeMAC(leader.Index).String(), l.NodeMAC(next.Index).String()
			for _, r := range rs {
				if err := r.Check(cpGapBudget); err != nil {
					t.Errorf("%s of the leader %s: %v", kind, leader.Name, err)
					continue
				}
				if len(r.Order) < 2 || r.Order[0] != old || r.Order[len(r.Order)-1] != nw {
					t.Errorf("%s: answers came from %v; want the old leader %s, then the new one %s", r.VIP, r.Order, old, nw)
				}
				t.Logf("%s of %s, %s: outage %s, %d of %d requests answered twice, %d of %d probes lost",
					kind, leader.Name, r.VIP, r.Gap.Round(time.Millisecond), len(r.Answers.Double), r.Answers.Requests, r.Lost, r.Sent)
			}
		})
	}
}

// pick returns the fault of the matrix called name.
func pick(fs []faults.Fault, name string) faults.Fault {
	for _, f := range fs {
		if f.Name == name {
			return f
		}
	}
	panic("no fault " + name)
}
