// Package vip_test runs real raftvip agents in a network-namespace lab and checks the
// control-plane VIP from a client's point of view: ARP/NDP, ping, UDP echo.
package vip_test

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/lab"
	"github.com/raftvip/raftvip/vip"
	"github.com/vishvananda/netns"
)

func TestControlPlaneVIPFollowsTheLeader(t *testing.T) {
	l := lab.New(t, 3)
	l.StartEcho(echoPort)
	all := agents.StartLab(t, l, agents.LabOptions{VIPs: []string{vip4, vip6}})
	leader := agents.Leader(t, all, 20*time.Second)
	v4, v6 := netip.MustParseAddr(vip4), netip.MustParseAddr(vip6)

	for _, v := range []netip.Addr{v4, v6} {
		lab.Eventually(t, 10*time.Second, "ping "+v.String(), func() error { return ping(l, v) })
		l.WaitEcho(v, echoPort, leader.NS, 10*time.Second)
		lab.Eventually(t, 5*time.Second, "neighbour entry", func() error { return l.NeighIs(v, l.NodeMAC(leader.Index)) })
	}
	for _, a := range all {
		if a != leader && len(a.Held(t)) != 0 {
			t.Fatalf("follower %s holds %v", a.Name, a.Held(t))
		}
	}

	// The leader's cable is pulled: another node takes the VIP and tells the segment;
	// the client's existing neighbour entries move without anyone flushing them.
	l.CutLink(leader.Index)
	next := agents.Leader(t, all, 20*time.Second, leader)
	if next == leader {
		t.Fatalf("leader did not change")
	}
	for _, v := range []netip.Addr{v4, v6} {
		lab.Eventually(t, 10*time.Second, "neighbour entry after failover", func() error {
			return l.NeighIs(v, l.NodeMAC(next.Index))
		})
		l.WaitEcho(v, echoPort, next.NS, 10*time.Second)
	}

	// The old leader comes back: it is a follower now and must not announce.
	capture := l.Capture(l.Client(), lab.Iface, "arp or icmp6")
	l.RestoreLink(leader.Index)
	lab.Eventually(t, 10*time.Second, "old leader rejoins as follower", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := leader.Status(ctx)
		if err != nil {
			return err
		}
		if st.State != "Follower" || st.Leader.ID != next.Name {
			return errorf("old leader is %s, sees leader %q", st.State, st.Leader.ID)
		}
		return nil
	})
	time.Sleep(time.Second)
	lines := capture.Stop()
	oldMAC := l.NodeMAC(leader.Index).String()
	for _, a := range lab.Claims(lines, netip.MustParseAddr(vip4)) {
		if a.MAC == oldMAC {
			t.Fatalf("old leader announced the VIP after it came back: %s", a.Line)
		}
	}
	for _, ln := range lines {
		if strings.Contains(ln, oldMAC+" >") && strings.Contains(ln, "neighbor advertisement") && strings.Contains(ln, "tgt is "+vip6) {
			t.Fatalf("old leader advertised the IPv6 VIP after it came back: %s", ln)
		}
	}
	if h := leader.Held(t); len(h) != 0 {
		t.Fatalf("old leader holds %v after coming back", h)
	}
	for _, v := range []netip.Addr{v4, v6} {
		if err := l.NeighIs(v, l.NodeMAC(next.Index)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPartitionedLeaderGoesSilentFirst(t *testing.T) {
	l := lab.New(t, 3, lab.WithoutIPv6())
	all := agents.StartLab(t, l, agents.LabOptions{VIPs: []string{vip4}})
	leader := agents.Leader(t, all, 20*time.Second)
	v4 := netip.MustParseAddr(vip4)
	lab.Eventually(t, 10*time.Second, "ping VIP", func() error { return ping(l, v4) })

	// The client keeps asking who has the VIP (every 10 ms, bounded) while the leader
	// is cut off from the other voters but not from the client.
	capture := l.Capture(l.Client(), lab.Iface, "arp")
	arping := l.Start(l.Client(), "arping", "arping", "-i", lab.Iface, "-W", "0.01", "-c", "600", vip4)
	time.Sleep(300 * time.Millisecond)
	l.Partition(leader.Index)
	next := agents.Leader(t, all, 20*time.Second, leader)
	lab.Eventually(t, 5*time.Second, "partitioned leader drops the VIP", func() error {
		if h := leader.Held(t); len(h) != 0 {
			return errorf("partitioned old leader still holds %v", h)
		}
		return nil
	})
	lab.Eventually(t, 10*time.Second, "client follows the new leader", func() error {
		return l.NeighIs(v4, l.NodeMAC(next.Index))
	})
	time.Sleep(500 * time.Millisecond)
	arping.Kill()
	order, err := lab.SingleSpeaker(lab.Claims(capture.Stop(), v4))
	if err != nil {
		t.Fatal(err)
	}
	if len(order) < 2 || order[0] != l.NodeMAC(leader.Index).String() || order[len(order)-1] != l.NodeMAC(next.Index).String() {
		t.Fatalf("ARP answers for the VIP came from %v; want the old leader %s then the new one %s", order, l.NodeMAC(leader.Index), l.NodeMAC(next.Index))
	}
	l.Heal()
}

func TestStaleVIPRemovedOnStart(t *testing.T) {
	l := lab.New(t, 3, lab.WithoutIPv6())
	stale := []netip.Addr{netip.MustParseAddr(vip4), netip.MustParseAddr("198.51.100.101")}
	// A crashed run left both the control-plane VIP and an old service VIP on node 0.
	err := l.RunInNS(l.Node(0), func() error {
		for _, v := range stale {
			if err := vip.AddAddress(lab.Iface, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Only node 0 runs: with a three-voter peer list it can never be leader, so it
	// owns nothing and must remove both.
	all := agents.StartLab(t, l, agents.LabOptions{VIPs: []string{vip4}, Only: []int{0}})
	lab.Eventually(t, 10*time.Second, "stale VIPs removed", func() error {
		var left []netip.Addr
		err := l.RunInNS(l.Node(0), func() error {
			var err error
			left, err = vip.ListVIPAddresses(lab.Iface)
			return err
		})
		if err != nil {
			return err
		}
		if len(left) != 0 {
			return errorf("still on the interface: %v", left)
		}
		return nil
	})
	if log := all[0].Proc.Log(); !strings.Contains(log, "removed VIPs left on the interface") {
		t.Fatalf("the agent did not say it removed stale VIPs:\n%s", log)
	}
}

func TestVIPTheInterfaceCannotCarryIsRefused(t *testing.T) {
	l := lab.New(t, 1, lab.WithoutIPv6())
	// Narrow node 0's subnet so a lab address falls outside it.
	if _, err := l.Exec(l.Node(0), "ip", "addr", "replace", l.NodeIP(0).String()+"/25", "dev", lab.Iface); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exec(l.Node(0), "ip", "addr", "del", l.NodeIP(0).String()+"/24", "dev", lab.Iface); err != nil {
		t.Fatal(err)
	}
	bin := agents.Binary(t)
	cases := []struct{ name, vip, want string }{
		{"IPv6 VIP on an interface without IPv6", vip6, "IPv6"},
		{"VIP outside the interface's subnets", "198.51.100.200", "subnet"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := l.Exec(l.Node(0), bin, "agent", "--node-name=node0", "--interface="+lab.Iface,
				"--advertise-address="+l.NodeIP(0).String(), "--peer=node0="+l.NodeIP(0).String()+":7950",
				"--insecure-transport", "--data-dir="+t.TempDir(), "--admin-socket=", "--control-plane-vip="+tc.vip)
			var ee *exec.ExitError
			if !errorsAs(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("want exit code 2, got %v:\n%s", err, out)
			}
			line := strings.TrimSpace(out)
			if strings.Count(line, "\n") > 0 || !strings.Contains(line, "--control-plane-vip") || !strings.Contains(line, tc.vip) ||
				!strings.Contains(line, lab.Iface) || !strings.Contains(line, tc.want) {
				t.Fatalf("want one line naming the flag, the VIP, the interface and %q; got:\n%s", tc.want, out)
			}
		})
	}
}

// TestStaleFenceOfAnotherInterfaceRemovedOnStart: an earlier run announced the
// control-plane VIP on another interface (its pool interface has changed since)
// and left that interface's fence table, which keeps the VIP silent on every
// interface. The agent removes the table at start, so the VIP answers on eth0.
func TestStaleFenceOfAnotherInterfaceRemovedOnStart(t *testing.T) {
	l := lab.New(t, 1, lab.WithoutIPv6())
	v := netip.MustParseAddr(vip4)
	err := l.RunInNS(l.Node(0), func() error {
		ns, err := netns.Get()
		if err != nil {
			return err
		}
		defer ns.Close()
		f, err := vip.NewFenceTableAt(ns, vip.FenceTable+"-eth9")
		if err != nil {
			return err
		}
		defer f.Close()
		if err := f.Install(); err != nil {
			return err
		}
		// Fenced, with its lease long over: the kernel drops everything for it.
		return f.Write([]netip.Addr{v}, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	all := agents.StartLab(t, l, agents.LabOptions{VIPs: []string{vip4}})
	agents.Leader(t, all, 20*time.Second)
	lab.Eventually(t, 20*time.Second, "the client reaches the VIP", func() error { return ping(l, v) })
	if log := all[0].Proc.Log(); !strings.Contains(log, "removed kernel fence tables of interfaces this run does not announce on") || !strings.Contains(log, "raftvip-eth9") {
		t.Fatalf("the agent did not say it removed the stale fence:\n%s", log)
	}
}
