package l2_test

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/test/cluster"
	"github.com/raftvip/raftvip/test/lab"
	"github.com/raftvip/raftvip/watchers"
)

// poolIface is every lab node's second link in the per-pool interface tests: a
// macvlan on eth0 standing in for a VLAN or second NIC of its own.
const poolIface = "vlan1"

// secondPool puts its VIPs on poolIface; only Services naming it get its addresses.
const secondPool = "second=198.51.100.200-198.51.100.219;auto-assign=false;interface=" + poolIface

// poolIfaceMAC is node i's poolIface address, told apart from every lab MAC.
func poolIfaceMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x72, 0x76, 0x00, 0x02, byte(0x10 + i)}
}

// onLink reports whether vip is an address of iface in node i's namespace.
func onLink(l *lab.Lab, i int, iface string, vip netip.Addr) (bool, error) {
	out, err := l.Exec(l.Node(i), "ip", "-o", "addr", "show", "dev", iface)
	if err != nil {
		return false, err
	}
	return strings.Contains(out, " "+vip.String()+"/"), nil
}

// reportsPoolLink waits until the leader's state has node's report say poolIface is up (or down).
func (e *env) reportsPoolLink(tb testing.TB, node string, up bool) {
	tb.Helper()
	lab.Eventually(tb, waitLong, fmt.Sprintf("%s reports %s up=%v", node, poolIface, up), func() error {
		for _, ls := range e.state(tb).Nodes[node].Interfaces {
			if ls.Name == poolIface && ls.Up == up {
				return nil
			}
		}
		return fmt.Errorf("report %+v", e.state(tb).Nodes[node])
	})
}

// poolEnv starts the lab with poolIface on every node and both pools, one pod
// on node0, Services main0..2 in the main pool and second0..2 in the second,
// all announced by node1 (every other node excluded until they are owned, then
// allowed again so nothing but the link moves them).
func poolEnv(tb testing.TB) (e *env, main, second []netip.Addr) {
	tb.Helper()
	e = startEnvWith(tb, envOptions{
		pools:   []string{mainPool, secondPool},
		extra:   []string{"--log-level=info"},
		prepare: func(l *lab.Lab) { l.AddMacvlan(poolIface, poolIfaceMAC, nil) },
	})
	e.cp.CreatePod(tb, cluster.Pod{Namespace: appNS, Name: "web-1", Node: "node0", IPs: []string{"10.244.0.10"},
		Labels: map[string]string{"app": "web"}, Ready: true})
	e.setExcluded(tb, true, 0, 2, 3, 4)
	for i := range 3 {
		e.createServices(tb, service(fmt.Sprintf("main%d", i), false, v4Only, corev1.IPFamilyPolicySingleStack, map[string]string{"app": "web"}))
		s := service(fmt.Sprintf("second%d", i), false, v4Only, corev1.IPFamilyPolicySingleStack, map[string]string{"app": "web"})
		s.Annotations = map[string]string{watchers.AnnotationPool: "second"}
		e.createServices(tb, s)
	}
	for i := range 3 {
		main = append(main, e.ingress(tb, fmt.Sprintf("main%d", i), 1)...)
		second = append(second, e.ingress(tb, fmt.Sprintf("second%d", i), 1)...)
	}
	for _, v := range append(append([]netip.Addr(nil), main...), second...) {
		e.ownerOf(tb, v, "node1", func(o raftstore.Owner) bool { return o.Node == "node1" })
	}
	e.setExcluded(tb, false, 0, 2, 3, 4)
	return e, main, second
}

// TestPoolInterfaces: a pool with interface= has its VIPs on that link of the
// owner (the client resolves them to that link's MAC), the other pool's on
// --interface; taking the pool's link down on the owner moves that pool's VIPs
// and only those, to nodes whose link is up, and they land on the new owner's
// link of the pool.
func TestPoolInterfaces(t *testing.T) {
	e, main, second := poolEnv(t)
	l := e.l
	const owner = 1
	for _, v := range second {
		l.WaitEcho(v, echoPort, l.Node(owner), 20*time.Second)
		lab.Eventually(t, waitLong, v.String()+" on "+poolIface+" of node1", func() error {
			if ok, err := onLink(l, owner, poolIface, v); err != nil || !ok {
				return fmt.Errorf("not on %s (%v)", poolIface, err)
			}
			if ok, _ := onLink(l, owner, lab.Iface, v); ok {
				return fmt.Errorf("also on %s", lab.Iface)
			}
			return l.NeighIs(v, poolIfaceMAC(owner))
		})
	}
	for _, v := range main {
		l.WaitEcho(v, echoPort, l.Node(owner), 20*time.Second)
		lab.Eventually(t, waitLong, v.String()+" on "+lab.Iface+" of node1", func() error {
			if ok, err := onLink(l, owner, lab.Iface, v); err != nil || !ok {
				return fmt.Errorf("not on %s (%v)", lab.Iface, err)
			}
			return l.NeighIs(v, l.NodeMAC(owner))
		})
	}
	e.reportsPoolLink(t, "node1", true)
	before := e.state(t)

	if _, err := l.Exec(l.Node(owner), "ip", "link", "set", poolIface, "down"); err != nil {
		t.Fatal(err)
	}
	e.reportsPoolLink(t, "node1", false)
	for _, v := range second {
		o := e.ownerOf(t, v, "moved off node1", func(o raftstore.Owner) bool { return o.Node != "node1" })
		if o.Epoch != before.Owners[v.String()].Epoch+1 {
			t.Errorf("%s epoch %d after one move, was %d", v, o.Epoch, before.Owners[v.String()].Epoch)
		}
		to := e.byName(o.Node).Index
		l.WaitEcho(v, echoPort, l.Node(to), 20*time.Second)
		lab.Eventually(t, waitLong, v.String()+" on "+poolIface+" of "+o.Node, func() error {
			if ok, err := onLink(l, to, poolIface, v); err != nil || !ok {
				return fmt.Errorf("not on %s (%v)", poolIface, err)
			}
			return l.NeighIs(v, poolIfaceMAC(to))
		})
	}
	after := e.state(t)
	for _, v := range main {
		if a, b := after.Owners[v.String()], before.Owners[v.String()]; a != b {
			t.Errorf("%s of the main pool changed owner when only %s went down: %+v, was %+v", v, poolIface, a, b)
		}
		l.WaitEcho(v, echoPort, l.Node(owner), 20*time.Second)
	}
	lab.Eventually(t, waitLong, "node1 drops the second pool's VIPs", func() error {
		for _, v := range second {
			if ok, _ := onLink(l, owner, poolIface, v); ok {
				return fmt.Errorf("%s still on %s", v, poolIface)
			}
		}
		return nil
	})
	if _, err := l.Exec(l.Node(owner), "ip", "link", "set", poolIface, "up"); err != nil {
		t.Fatal(err)
	}
	e.reportsPoolLink(t, "node1", true)
}

// BenchmarkPoolLinkDownMove: time from taking the second pool's link down on the
// node announcing everything to the client's echo answered by the new owner of
// every VIP of that pool.
func BenchmarkPoolLinkDownMove(b *testing.B) {
	e, _, second := poolEnv(b)
	l := e.l
	for range b.N {
		start := time.Now()
		if _, err := l.Exec(l.Node(1), "ip", "link", "set", poolIface, "down"); err != nil {
			b.Fatal(err)
		}
		for _, v := range second {
			o := e.ownerOf(b, v, "moved off node1", func(o raftstore.Owner) bool { return o.Node != "node1" })
			l.WaitEcho(v, echoPort, l.Node(e.byName(o.Node).Index), waitLong)
		}
		b.ReportMetric(ms(time.Since(start)), "ms/move")
	}
}
