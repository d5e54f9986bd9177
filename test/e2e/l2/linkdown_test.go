package l2_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/test/cluster"
	"github.com/raftvip/raftvip/test/lab"
)

// vipIface is the victim's VIP interface in TestLinkDownMovesServiceVIPs: a
// macvlan on its eth0, so its VIPs sit on a link of their own while Raft keeps
// talking over eth0.
const vipIface = "vip0"

// vipIfaceMAC is vipIface's address, told apart from every lab MAC.
var vipIfaceMAC = net.HardwareAddr{0x02, 0x72, 0x76, 0x00, 0x01, 0x14}

// addVIPIface gives node i the macvlan vipIface. arp_ignore=1 keeps eth0 from
// answering ARP for the VIPs on vipIface, as on a host whose VIPs live on a
// NIC of their own.
func addVIPIface(tb testing.TB, l *lab.Lab, i int) {
	tb.Helper()
	steps := [][]string{
		{"sysctl", "-q", "-w", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf." + lab.Iface + ".arp_ignore=1"},
		{"ip", "link", "add", vipIface, "link", lab.Iface, "address", vipIfaceMAC.String(), "type", "macvlan", "mode", "bridge"},
		{"ip", "link", "set", vipIface, "up"},
	}
	for _, s := range steps {
		if _, err := l.Exec(l.Node(i), s...); err != nil {
			tb.Fatalf("node %d: %v", i, err)
		}
	}
}

// reportsLink waits until the leader's state has node's report say its interface
// is up (or down).
func (e *env) reportsLink(tb testing.TB, node string, up bool) {
	tb.Helper()
	lab.Eventually(tb, waitLong, fmt.Sprintf("%s reports its interface up=%v", node, up), func() error {
		if info := e.state(tb).Nodes[node]; info.InterfaceUp != up {
			return fmt.Errorf("report %+v", info)
		}
		return nil
	})
}

// TestLinkDownMovesServiceVIPs takes the VIP interface of a node down while the
// node stays in the Raft group: the node reports the link down, the leader moves
// its Service VIPs to other nodes, the client's ARP answers come from one node at
// a time throughout, and when the link comes back the node reports it up and the
// VIPs stay where they went.
func TestLinkDownMovesServiceVIPs(t *testing.T) {
	const victim = 3
	e := startEnvWith(t, envOptions{
		pools:   []string{mainPool},
		prepare: func(l *lab.Lab) { addVIPIface(t, l, victim) },
		perNode: func(i int) []string {
			if i == victim {
				return []string{"--interface=" + vipIface}
			}
			return nil
		},
	})
	l := e.l
	e.cp.CreatePod(t, cluster.Pod{Namespace: appNS, Name: "web-1", Node: "node0", IPs: []string{"10.244.0.10"},
		Labels: map[string]string{"app": "web"}, Ready: true})
	names := []string{"l0", "l1", "l2", "l3", "l4", "l5"}
	for _, n := range names {
		e.createServices(t, service(n, false, v4Only, corev1.IPFamilyPolicySingleStack, map[string]string{"app": "web"}))
	}
	ingress := map[string][]netip.Addr{}
	for _, n := range names {
		ingress[n] = e.ingress(t, n, 1)
	}
	every := allVIPs(ingress, names...)
	var st raftstore.State
	lab.Eventually(t, waitLong, "an owner for every VIP", func() error {
		st = e.state(t)
		for _, v := range every {
			if _, ok := st.Owners[v.String()]; !ok {
				return fmt.Errorf("%s has no owner", v)
			}
		}
		return nil
	})
	e.reportsLink(t, nodeName(victim), true)
	moved := ownedBy(st, nodeName(victim), every)
	if len(moved) == 0 {
		t.Fatalf("%s owns none of %d VIPs: %+v", nodeName(victim), len(every), st.Owners)
	}
	for _, v := range moved {
		l.WaitEcho(v, echoPort, l.Node(victim), 20*time.Second)
		lab.Eventually(t, waitLong, "client neighbour entry of "+v.String()+" names "+vipIface, func() error { return l.NeighIs(v, vipIfaceMAC) })
	}
	capture := l.Capture(l.Client(), lab.Iface, "arp")
	defer capture.Stop()
	var sprays []*lab.Proc
	for _, v := range moved {
		sprays = append(sprays, arpSpray(l, v))
	}
	defer func() {
		for _, p := range sprays {
			p.Kill()
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	if _, ok := capture.WaitFor(ctx, func(ln string) bool {
		cs := lab.Claims([]string{ln}, moved[0])
		return len(cs) == 1 && cs[0].MAC == vipIfaceMAC.String()
	}); !ok {
		t.Fatalf("%s never answered the client's ARP requests for %s", vipIface, moved[0])
	}

	if _, err := l.Exec(l.Node(victim), "ip", "link", "set", vipIface, "down"); err != nil {
		t.Fatal(err)
	}
	e.reportsLink(t, nodeName(victim), false)
	for _, v := range moved {
		before := st.Owners[v.String()]
		o := e.ownerOf(t, v, "moved off the node whose link is down", func(o raftstore.Owner) bool { return o.Node != nodeName(victim) })
		if o.Epoch != before.Epoch+1 {
			t.Errorf("%s epoch %d after one move, was %d", v, o.Epoch, before.Epoch)
		}
		mac := l.NodeMAC(e.byName(o.Node).Index)
		lab.Eventually(t, waitLong, "client neighbour entry of "+v.String()+" follows", func() error { return l.NeighIs(v, mac) })
		l.WaitEcho(v, echoPort, l.Node(e.byName(o.Node).Index), 20*time.Second)
	}
	// The move came from the report, not from losing the node: it still answers
	// the leader.
	victimAgent := e.agent(victim)
	waitRejoined(t, victimAgent)
	lab.Eventually(t, waitLong, "the node with its link down drops its VIPs", func() error {
		if h := victimAgent.Held(t); len(h) > 0 {
			return fmt.Errorf("holds %v", h)
		}
		return nil
	})
	after := e.state(t)

	if _, err := l.Exec(l.Node(victim), "ip", "link", "set", vipIface, "up"); err != nil {
		t.Fatal(err)
	}
	e.reportsLink(t, nodeName(victim), true)
	time.Sleep(2 * time.Second)
	for _, p := range sprays {
		p.Kill()
	}
	lines := capture.Stop()
	for _, v := range moved {
		order, err := lab.SingleSpeaker(lab.Claims(lines, v))
		if err != nil {
			t.Errorf("%s: %v", v, err)
			continue
		}
		want := []string{vipIfaceMAC.String(), l.NodeMAC(e.byName(after.Owners[v.String()].Node).Index).String()}
		if !slices.Equal(order, want) {
			t.Errorf("ARP answers for %s came from %v, want %s then the new owner %v", v, order, vipIface, want)
		}
	}
	if now := e.state(t); !ownersEqual(now, after, every) {
		t.Errorf("owners changed when the link came back (they should stay put):\n%+v\nwas\n%+v", now.Owners, after.Owners)
	}
	if h := victimAgent.Held(t); len(h) > 0 {
		t.Errorf("%s holds %v after its link came back", victimAgent.Name, h)
	}
}
