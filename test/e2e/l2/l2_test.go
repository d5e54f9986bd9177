package l2_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/cluster"
	"github.com/raftvip/raftvip/test/lab"
	"github.com/raftvip/raftvip/watchers"
)

var (
	v4Only = []corev1.IPFamily{corev1.IPv4Protocol}
	dual   = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
)

// clusterServices are the externalTrafficPolicy Cluster Services of the test, all
// backed by one pod: more Services than nodes, so the leader's balancing gives every
// node, workers included, at least one.
var clusterServices = []string{"c0", "c1", "c2", "c3", "c4", "dual"}

// arpSpray makes the client ask for vip every 20 ms, so every node that holds it
// answers on the wire while the capture runs: two holders would show as interleaved
// replies.
func arpSpray(l *lab.Lab, vip netip.Addr) *lab.Proc {
	return l.Start(l.Client(), "arping-"+vip.String(), "arping", "-q", "-i", lab.Iface, "-W", "0.02", vip.String())
}

// ownedBy lists, sorted, the VIPs the state gives node among vips.
func ownedBy(st raftstore.State, node string, vips []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, v := range vips {
		if st.Owners[v.String()].Node == node {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}

func allVIPs(ingress map[string][]netip.Addr, names ...string) []netip.Addr {
	var out []netip.Addr
	for _, n := range names {
		out = append(out, ingress[n]...)
	}
	return out
}

// waitRejoined waits until a node that was cut off hears from the leader again.
func waitRejoined(t testing.TB, a *agents.Agent) {
	t.Helper()
	lab.Eventually(t, waitLong, a.Name+" hears from a leader again", func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		st, err := a.Status(ctx)
		if err != nil {
			return err
		}
		if st.Leader.ID == "" || st.LastContactMs < 0 || st.LastContactMs > 200 {
			return fmt.Errorf("leader %q, last contact %d ms", st.Leader.ID, st.LastContactMs)
		}
		return nil
	})
}

func TestServiceVIPs(t *testing.T) {
	e := startEnv(t, []string{mainPool})
	l := e.l
	e.cp.CreatePod(t, cluster.Pod{Namespace: appNS, Name: "web-1", Node: "node0", IPs: []string{"10.244.0.10"},
		Labels: map[string]string{"app": "web"}, Ready: true})
	e.cp.CreatePod(t, cluster.Pod{Namespace: appNS, Name: "loc-a", Node: "node4", IPs: []string{"10.244.4.10"},
		Labels: map[string]string{"app": "loc"}, Ready: true})
	web, loc := map[string]string{"app": "web"}, map[string]string{"app": "loc"}
	for _, n := range clusterServices[:5] {
		e.createServices(t, service(n, false, v4Only, corev1.IPFamilyPolicySingleStack, web))
	}
	e.createServices(t,
		service("dual", false, dual, corev1.IPFamilyPolicyPreferDualStack, web),
		service("local", true, v4Only, corev1.IPFamilyPolicySingleStack, loc))
	ingress := map[string][]netip.Addr{"dual": e.ingress(t, "dual", 2), "local": e.ingress(t, "local", 1)}
	for _, n := range clusterServices[:5] {
		ingress[n] = e.ingress(t, n, 1)
	}
	every := allVIPs(ingress, append(slices.Clone(clusterServices), "local")...)

	if !t.Run("every VIP answers from its one owner", func(t *testing.T) {
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
		if o := st.Owners[ingress["local"][0].String()]; o.Node != "node4" {
			t.Errorf("the Local Service's VIP is on %s, want node4, the only node with its endpoint", o.Node)
		}
		if d := ingress["dual"]; st.Owners[d[0].String()].Node != st.Owners[d[1].String()].Node {
			t.Errorf("the dual-stack Service's VIPs are on different nodes: %+v %+v", st.Owners[d[0].String()], st.Owners[d[1].String()])
		}
		for i := range labNodes {
			if len(ownedBy(st, nodeName(i), allVIPs(ingress, clusterServices...))) == 0 {
				t.Errorf("%s announces none of the %d Cluster Services' VIPs; owners %+v", nodeName(i), len(clusterServices), st.Owners)
			}
		}
		for _, v := range every {
			o := st.Owners[v.String()]
			if o.Epoch < 1 || o.VIP != v.String() || !strings.HasPrefix(o.Service, appNS+"/") {
				t.Errorf("/state owner of %s is %+v", v, o)
			}
			i := e.byName(o.Node).Index
			l.WaitEcho(v, echoPort, l.Node(i), 20*time.Second)
			lab.Eventually(t, waitLong, "neighbour entry of "+v.String(), func() error { return l.NeighIs(v, l.NodeMAC(i)) })
		}
		for _, a := range e.agents {
			want := ownedBy(st, a.Name, every)
			lab.Eventually(t, waitLong, a.Name+" holds exactly its VIPs", func() error {
				var got []netip.Addr
				for _, s := range a.Held(t) {
					got = append(got, netip.MustParseAddr(s))
				}
				slices.SortFunc(got, func(a, b netip.Addr) int { return a.Compare(b) })
				if !slices.Equal(got, want) {
					return fmt.Errorf("holds %v, want %v", got, want)
				}
				return nil
			})
		}
		e.checkL2Statuses(t, ingress)
	}) {
		return
	}

	if !t.Run("only voters talk to the API server", func(t *testing.T) {
		conns := func(i int) []string {
			out, err := l.Exec(l.Node(i), "ss", "-tnH", "state", "established", "dst", apiAddr)
			if err != nil {
				t.Fatal(err)
			}
			return strings.Fields(out)
		}
		for _, i := range workers {
			if c := conns(i); len(c) > 0 {
				t.Errorf("worker %s has connections to the API server: %v", nodeName(i), c)
			}
		}
		// The same check finds the voters' connections, so it can fail.
		for i := range 3 {
			if len(conns(i)) == 0 {
				t.Errorf("voter %s holds no connection to the API server", nodeName(i))
			}
		}
	}) {
		return
	}

	// The capture and ARP sprays run from before the cut until the worker is back,
	// across the next two subtests.
	const victim = 3
	cutOff := e.agent(victim)
	var (
		moved   []netip.Addr
		capture *lab.Capture
		sprays  []*lab.Proc
		after   raftstore.State
	)
	if !t.Run("cutting a worker's link moves its VIPs and the client follows", func(t *testing.T) {
		st := e.state(t)
		moved = ownedBy(st, nodeName(victim), every)
		if len(moved) == 0 {
			t.Fatalf("%s owns nothing to move", nodeName(victim))
		}
		for _, v := range moved {
			l.WaitEcho(v, echoPort, l.Node(victim), 20*time.Second)
		}
		capture = l.Capture(l.Client(), lab.Iface, "arp or icmp6")
		for _, v := range moved {
			if v.Is4() {
				sprays = append(sprays, arpSpray(l, v))
			}
		}
		e.cutLink(victim)
		for _, v := range moved {
			before := st.Owners[v.String()]
			o := e.ownerOf(t, v, "moved off the cut node", func(o raftstore.Owner) bool { return o.Node != cutOff.Name })
			if o.Epoch != before.Epoch+1 {
				t.Errorf("%s epoch %d after one move, was %d", v, o.Epoch, before.Epoch)
			}
			// The client's entry moves on the new owner's announcement alone: no flush,
			// and no probe from the client before this check.
			mac := l.NodeMAC(e.byName(o.Node).Index)
			lab.Eventually(t, waitLong, "client neighbour entry of "+v.String()+" follows", func() error { return l.NeighIs(v, mac) })
		}
		after = e.state(t)
		for _, v := range moved {
			l.WaitEcho(v, echoPort, l.Node(e.byName(after.Owners[v.String()].Node).Index), 20*time.Second)
		}
		lab.Eventually(t, waitLong, "the cut node drops its VIPs", func() error {
			if h := cutOff.Held(t); len(h) > 0 {
				return fmt.Errorf("holds %v", h)
			}
			return nil
		})
		for _, v := range moved {
			if _, err := lab.SingleSpeaker(lab.Claims(capture.Lines(), v)); err != nil {
				t.Errorf("%s: %v", v, err)
			}
		}
		e.checkL2Statuses(t, ingress)
	}) {
		return
	}

	t.Run("a worker that comes back stays silent about the VIPs that moved", func(t *testing.T) {
		e.restoreLink(victim)
		waitRejoined(t, cutOff)
		time.Sleep(2 * time.Second)
		for _, p := range sprays {
			p.Kill()
		}
		lines := capture.Stop()
		for _, v := range moved {
			if _, err := lab.SingleSpeaker(lab.Claims(lines, v)); err != nil {
				t.Errorf("%s: %v", v, err)
			}
		}
		if h := cutOff.Held(t); len(h) > 0 {
			t.Errorf("%s holds %v after coming back", cutOff.Name, h)
		}
		if now := e.state(t); !ownersEqual(now, after, every) {
			t.Errorf("owners changed when the worker came back (they should stay put):\n%+v\nwas\n%+v", now.Owners, after.Owners)
		}
		for _, v := range moved {
			i := e.byName(after.Owners[v.String()].Node).Index
			l.WaitEcho(v, echoPort, l.Node(i), 20*time.Second)
			if err := l.NeighIs(v, l.NodeMAC(i)); err != nil {
				t.Error(err)
			}
		}
	})

	if !t.Run("an externalTrafficPolicy Local VIP follows its only endpoint", func(t *testing.T) {
		v := ingress["local"][0]
		before := e.ownerOf(t, v, "on node4", func(o raftstore.Owner) bool { return o.Node == "node4" })
		e.cp.CreatePod(t, cluster.Pod{Namespace: appNS, Name: "loc-b", Node: "node1", IPs: []string{"10.244.1.10"},
			Labels: map[string]string{"app": "loc"}, Ready: true})
		e.cp.WaitForEndpointSlices(t, appNS, "local", cluster.EndpointIs("10.244.1.10", cluster.EndpointState{Ready: true, Serving: true}))
		// Sticky: a second eligible node is no reason to move.
		if o := e.state(t).Owners[v.String()]; o != before {
			t.Errorf("the Local VIP moved to %+v when a second endpoint appeared", o)
		}
		e.cp.DeletePodNow(t, appNS, "loc-a")
		o := e.ownerOf(t, v, "on node1", func(o raftstore.Owner) bool { return o.Node == "node1" })
		if o.Epoch != before.Epoch+1 {
			t.Errorf("epoch %d after one move, was %d", o.Epoch, before.Epoch)
		}
		lab.Eventually(t, waitLong, "client neighbour entry follows to node1", func() error { return l.NeighIs(v, l.NodeMAC(1)) })
		l.WaitEcho(v, echoPort, l.Node(1), 20*time.Second)
		lab.Eventually(t, waitLong, "node4 drops the Local VIP", func() error {
			if slices.Contains(e.agent(4).Held(t), v.String()) {
				return fmt.Errorf("node4 still holds %s", v)
			}
			return nil
		})
		e.checkL2Statuses(t, ingress)
	}) {
		return
	}

	var (
		pv       netip.Addr
		pvictim  *agents.Agent
		pcapture *lab.Capture
		pspray   *lab.Proc
		pnew     string
	)
	if !t.Run("a partitioned owner goes silent before the new owner speaks", func(t *testing.T) {
		st := e.state(t)
		leader := e.leader(t)
		// A worker if one owns an IPv4 Cluster VIP, else a follower voter.
		for _, cand := range []int{3, 4, 0, 1, 2} {
			if nodeName(cand) == leader.Name || pvictim != nil {
				continue
			}
			for _, x := range ownedBy(st, nodeName(cand), allVIPs(ingress, clusterServices...)) {
				if x.Is4() {
					pv, pvictim = x, e.agent(cand)
					break
				}
			}
		}
		if pvictim == nil {
			t.Fatalf("no follower owns an IPv4 Cluster VIP: %+v", st.Owners)
		}
		t.Logf("partitioning %s (owner of %s) from every other node", pvictim.Name, pv)
		ctx, cancel := context.WithTimeout(t.Context(), waitLong)
		defer cancel()
		p := l.Probe(ctx, l.Client(), netip.AddrPortFrom(pv, echoPort), 5*time.Millisecond)
		defer p.Stop()
		if _, err := p.WaitReply(ctx, pvictim.NS, time.Now()); err != nil {
			t.Fatal(err)
		}
		pcapture = l.Capture(l.Client(), lab.Iface, "arp")
		pspray = arpSpray(l, pv)
		if _, ok := pcapture.WaitFor(ctx, func(ln string) bool {
			cs := lab.Claims([]string{ln}, pv)
			return len(cs) == 1 && cs[0].MAC == l.NodeMAC(pvictim.Index).String()
		}); !ok {
			t.Fatalf("the owner never answered the client's ARP requests for %s", pv)
		}
		e.partition(pvictim.Index)
		o := e.ownerOf(t, pv, "moved off the partitioned node", func(o raftstore.Owner) bool { return o.Node != pvictim.Name })
		pnew = o.Node
		newNS := e.byName(o.Node).NS
		if _, err := p.WaitReply(ctx, newNS, time.Now()); err != nil {
			t.Fatal(err)
		}
		res := p.Stop()
		// The new owner's announcement went out before the client's probes could
		// reach it, but tcpdump's line of it may not have been read yet.
		newMAC := l.NodeMAC(e.byName(o.Node).Index).String()
		if _, ok := pcapture.WaitFor(ctx, func(ln string) bool {
			cs := lab.Claims([]string{ln}, pv)
			return len(cs) == 1 && cs[0].MAC == newMAC
		}); !ok {
			t.Errorf("the capture never showed the new owner %s claim %s", o.Node, pv)
		}
		order, err := lab.SingleSpeaker(lab.Claims(pcapture.Lines(), pv))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{l.NodeMAC(pvictim.Index).String(), newMAC}
		if !slices.Equal(order, want) {
			t.Errorf("ARP answers for %s came from %v, want the old owner then the new one %v", pv, order, want)
		}
		sw := res.Switches()
		if len(sw) != 1 || sw[0].From != pvictim.NS || sw[0].To != newNS {
			t.Fatalf("the client saw the answering node change %d times: %+v", len(sw), sw)
		}
		t.Logf("the client saw %s answer until %s and %s from %s on (gap %s, %d of %d probes lost)",
			nsOf(l, sw[0].From), sw[0].LastFrom.Format("15:04:05.000"), nsOf(l, sw[0].To), sw[0].FirstTo.Format("15:04:05.000"),
			sw[0].Gap, res.Lost(), res.Sent)
		e.checkL2Statuses(t, ingress)
	}) {
		return
	}

	t.Run("a healed owner stays silent about the VIP that moved", func(t *testing.T) {
		e.heal()
		waitRejoined(t, pvictim)
		time.Sleep(2 * time.Second)
		pspray.Kill()
		lines := pcapture.Stop()
		if _, err := lab.SingleSpeaker(lab.Claims(lines, pv)); err != nil {
			t.Error(err)
		}
		if h := pvictim.Held(t); slices.Contains(h, pv.String()) {
			t.Errorf("%s holds %s again after the partition healed", pvictim.Name, pv)
		}
		i := e.byName(pnew).Index
		l.WaitEcho(pv, echoPort, l.Node(i), 20*time.Second)
		if err := l.NeighIs(pv, l.NodeMAC(i)); err != nil {
			t.Error(err)
		}
		e.checkL2Statuses(t, ingress)
	})

	t.Run("ServiceL2Status objects go with the daemon pod", func(t *testing.T) {
		st := e.state(t)
		node := ""
		for _, n := range []string{"node1", "node2", "node0", "node4", "node3"} {
			if len(ownedBy(st, n, every)) > 0 {
				node = n
				break
			}
		}
		if node == "" {
			t.Fatal("no node owns anything")
		}
		var names []string
		for _, u := range e.l2Statuses(t) {
			if u.GetLabels()[watchers.LabelNode] == node {
				names = append(names, u.GetName())
			}
		}
		if len(names) == 0 {
			t.Fatalf("%s owns VIPs but has no ServiceL2Status objects", node)
		}
		e.cp.DeletePodNow(t, systemNS, "raftvip-"+node)
		lab.Eventually(t, waitLong, "the garbage collector removes "+strings.Join(names, ", "), func() error {
			var left []string
			for _, u := range e.l2Statuses(t) {
				if slices.Contains(names, u.GetName()) {
					left = append(left, u.GetName())
				}
			}
			if len(left) > 0 {
				return fmt.Errorf("still there: %v", left)
			}
			return nil
		})
		// The leader's resync writes them again, without an owner now that there is
		// no pod, because the node still announces.
		want := wantL2Statuses(e.state(t), ingress)
		lab.Eventually(t, waitLong, "the leader recreates "+node+"'s objects without an owner", func() error {
			var got, wantNode []string
			for _, w := range want {
				if strings.HasPrefix(w, node+" ") {
					wantNode = append(wantNode, w)
				}
			}
			for _, u := range e.l2Statuses(t) {
				if u.GetLabels()[watchers.LabelNode] != node {
					continue
				}
				if refs := u.GetOwnerReferences(); len(refs) != 0 {
					return fmt.Errorf("%s has owner references %+v", u.GetName(), refs)
				}
				got = append(got, describe(u))
			}
			slices.Sort(got)
			if !slices.Equal(got, wantNode) {
				return fmt.Errorf("objects %v, want %v", got, wantNode)
			}
			return nil
		})
	})
}

// describe is "node namespace/name vips" for an object.
func describe(u unstructured.Unstructured) string {
	node, _, _ := unstructured.NestedString(u.Object, "status", "node")
	ns, _, _ := unstructured.NestedString(u.Object, "status", "serviceNamespace")
	name, _, _ := unstructured.NestedString(u.Object, "status", "serviceName")
	vips, _, _ := unstructured.NestedStringSlice(u.Object, "status", "vips")
	return fmt.Sprintf("%s %s/%s %s", node, ns, name, strings.Join(vips, ","))
}

func ownersEqual(a, b raftstore.State, vips []netip.Addr) bool {
	for _, v := range vips {
		if a.Owners[v.String()] != b.Owners[v.String()] {
			return false
		}
	}
	return true
}
