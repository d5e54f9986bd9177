package vip_test

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/lab"
)

// vipIface is every node's link for the control-plane VIP in
// TestLeaderWithVIPLinkDownHandsOver: a macvlan on eth0 standing in for a VLAN
// or a NIC of its own, while Raft stays on eth0.
const vipIface = "vlan1"

// vipIfaceMAC is node i's vipIface address, told apart from every lab MAC.
func vipIfaceMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x72, 0x76, 0x00, 0x03, byte(0x10 + i)}
}

// TestLeaderWithVIPLinkDownHandsOver: the leader's control-plane VIP lives on a
// link of its own and Raft on another. When the VIP's link goes down the
// leader keeps its quorum, so no election moves the VIP; the leader itself
// hands leadership to a voter whose link is up, and the client reaches the VIP
// there.
func TestLeaderWithVIPLinkDownHandsOver(t *testing.T) {
	l := lab.New(t, 3, lab.WithoutIPv6())
	// The VIP's subnet must be configured on its link (the agent checks).
	l.AddMacvlan(vipIface, vipIfaceMAC, func(i int) string { return fmt.Sprintf("198.51.100.%d/24", 61+i) })
	all := agents.StartLab(t, l, agents.LabOptions{VIPs: []string{vip4}, Extra: []string{"--interface=" + vipIface}})
	leader := agents.Leader(t, all, 20*time.Second)
	v := netip.MustParseAddr(vip4)
	lab.Eventually(t, 20*time.Second, "the client reaches the VIP on the leader", func() error {
		if err := ping(l, v); err != nil {
			return err
		}
		return l.NeighIs(v, vipIfaceMAC(leader.Index))
	})

	if _, err := l.Exec(leader.NS, "ip", "link", "set", vipIface, "down"); err != nil {
		t.Fatal(err)
	}
	next := agents.Leader(t, all, time.Minute, leader)
	if next == leader {
		t.Fatal("leadership did not move")
	}
	lab.Eventually(t, 20*time.Second, "the client reaches the VIP on the new leader", func() error {
		if _, err := l.Exec(l.Client(), "ip", "neigh", "flush", "to", vip4); err != nil {
			return err
		}
		if err := ping(l, v); err != nil {
			return err
		}
		return l.NeighIs(v, vipIfaceMAC(next.Index))
	})
	line := ""
	for _, ln := range strings.Split(leader.Proc.Log(), "\n") {
		if strings.Contains(ln, "handing leadership and the control-plane VIP over") {
			line = ln
		}
	}
	if !strings.Contains(line, "interface is down here") || !strings.Contains(line, fmt.Sprintf("to=%s", next.Name)) {
		t.Fatalf("the old leader did not log a handover to %s for its link: %q\n%s", next.Name, line, leader.Proc.Log())
	}
}
