package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/bgprouter"
	"github.com/raftvip/raftvip/test/lab"
)

var (
	vip4  = netip.MustParseAddr("198.51.100.100")
	vip4b = netip.MustParseAddr("198.51.100.101")
	vip6  = netip.MustParseAddr("2001:db8:100::100")
)

const (
	routerAS  = 64500
	speakerAS = 64512
	// awaitTimeout bounds every wait on the router; it is a deadline for a
	// wait, never a measured budget.
	awaitTimeout = 60 * time.Second
)

// host is the host prefix of a.
func host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// bgpLab is three speakers, each in its node's namespace, peering with a
// router in the client namespace.
type bgpLab struct {
	l        *lab.Lab
	dir      string
	peering  func(*lab.Lab, int) (Peer, bgprouter.Neighbor, uint32)
	router   *bgprouter.Remote
	speakers []*bgprouter.Process
	starts   int
	// addrs[i] is the address the router knows node i by.
	addrs []netip.Addr
}

// labPeering is how node i peers with the router: node 0 over IPv4 eBGP with
// a TCP MD5 password, node 1 over IPv6 eBGP with multihop and gobgp's
// default 90s hold time, node 2 over IPv4 iBGP (so LOCAL_PREF reaches the
// router) with a 3s hold time.
func labPeering(l *lab.Lab, i int) (speaker Peer, neighbor bgprouter.Neighbor, as uint32) {
	switch i {
	case 0:
		return Peer{Address: l.ClientIP(), AS: routerAS, Password: "s3cret"},
			bgprouter.Neighbor{Address: l.NodeIP(0), AS: speakerAS, Password: "s3cret"}, speakerAS
	case 1:
		return Peer{Address: l.ClientIP6(), AS: routerAS, Multihop: 2},
			bgprouter.Neighbor{Address: l.NodeIP6(1), AS: speakerAS}, speakerAS
	default:
		return Peer{Address: l.ClientIP(), AS: routerAS, HoldTime: 3 * time.Second},
			bgprouter.Neighbor{Address: l.NodeIP(i), AS: routerAS, HoldTime: 3 * time.Second}, routerAS
	}
}

// newBGPLab builds the lab, starts the router (node i is its neighbor i) and
// the speakers (with peer options from peering) and waits for every session
// to be established.
func newBGPLab(t testing.TB, nodes int, peering func(*lab.Lab, int) (Peer, bgprouter.Neighbor, uint32)) *bgpLab {
	t.Helper()
	l := lab.New(t, nodes)
	b := &bgpLab{l: l, dir: bgprouter.SocketDir(t), peering: peering, speakers: make([]*bgprouter.Process, nodes)}
	rc := bgprouter.Config{AS: routerAS, RouterID: l.ClientIP(), ListenPort: 179, ListenAddrs: []string{"0.0.0.0", "::"}}
	for i := range nodes {
		_, n, _ := peering(l, i)
		rc.Neighbors = append(rc.Neighbors, n)
		b.addrs = append(b.addrs, n.Address)
	}
	b.router = bgprouter.StartRemote(t, l, l.Client(), b.dir, rc)
	for i := range nodes {
		b.startSpeaker(t, i)
	}
	for i := range nodes {
		b.awaitPeer(t, i, true)
	}
	return b
}

// startSpeaker starts (or restarts, after Close) the speaker of node i.
func (b *bgpLab) startSpeaker(t testing.TB, i int) {
	t.Helper()
	p, _, as := b.peering(b.l, i)
	b.starts++
	sp := bgprouter.StartProcess(t, b.l, b.l.Node(i), fmt.Sprintf("speaker%d-%d", i, b.starts), b.dir)
	sp.Call(t, "Speaker.Start", SpeakerArgs{AS: as, NextHop4: b.l.NodeIP(i), NextHop6: b.l.NodeIP6(i), Peers: []Peer{p}}, &struct{}{})
	b.speakers[i] = sp
}

// awaitPeer waits until the router's session with node i is (or is not) established.
func (b *bgpLab) awaitPeer(t testing.TB, i int, established bool) {
	t.Helper()
	deadline := time.Now().Add(awaitTimeout)
	for {
		peers := b.router.Peers(t)
		for _, p := range peers {
			if p.Address == b.addrs[i] && (p.State == "established") == established {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("router session with node %d (%s): want established=%v, peers %+v", i, b.addrs[i], established, peers)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// await waits until the router's RIB matches want (prefix to the nodes
// holding a path for it) and returns when it saw the match.
func (b *bgpLab) await(t testing.TB, want map[netip.Addr][]int) time.Time {
	t.Helper()
	return b.router.AwaitHosts(t, want, time.Time{}, awaitTimeout)
}

// paths returns the router's paths for vip, keyed by node index.
func (b *bgpLab) paths(t testing.TB, vip netip.Addr) map[int]bgprouter.Path {
	t.Helper()
	return b.router.HostPaths(t, vip)
}

// set calls Set on node i.
func (b *bgpLab) set(t testing.TB, i int, want map[netip.Addr]PathAttrs) Timing {
	t.Helper()
	var tm Timing
	b.speakers[i].Call(t, "Speaker.Set", want, &tm)
	return tm
}

// updatesFrom is how many UPDATE messages the router has received from node i.
func (b *bgpLab) updatesFrom(t testing.TB, i int) uint64 {
	t.Helper()
	for _, p := range b.router.Peers(t) {
		if p.Address == b.addrs[i] {
			return p.UpdatesRecv
		}
	}
	t.Fatalf("router has no neighbor %s", b.addrs[i])
	return 0
}

// TestLab runs three speakers against a router over real kernel TCP in the
// netns lab, through the life of a VIP: ECMP announcement, attribute change,
// withdrawal by Set and WithdrawAll, graceful Close, and a cut link.
func TestLab(t *testing.T) {
	b := newBGPLab(t, 3, labPeering)
	l := b.l
	attrs := PathAttrs{Communities: []string{"65000:100", "no-export"}, LocalPref: 200}
	for i := range 3 {
		b.set(t, i, map[netip.Addr]PathAttrs{vip4: attrs, vip6: attrs})
	}
	b.await(t, map[netip.Addr][]int{vip4: {0, 1, 2}, vip6: {0, 1, 2}})

	// ECMP: one path per node, each with that node's next hop of the
	// VIP's family (even node 1's IPv4 path, learnt over IPv6, and the
	// others' IPv6 paths, learnt over IPv4).
	for _, vip := range []netip.Addr{vip4, vip6} {
		paths := b.paths(t, vip)
		for i := range 3 {
			p, ok := paths[i]
			if !ok {
				t.Fatalf("%s: no path from node %d: %+v", vip, i, paths)
			}
			want := l.NodeIP(i)
			if vip.Is6() {
				want = l.NodeIP6(i)
			}
			if p.NextHop != want {
				t.Errorf("%s from node %d: next hop %s, want %s", vip, i, p.NextHop, want)
			}
			if !slices.Equal(p.Communities, []string{"65000:100", "no-export"}) {
				t.Errorf("%s from node %d: communities %v", vip, i, p.Communities)
			}
			// LOCAL_PREF crosses only the iBGP session of node 2.
			if wantLP := map[int]uint32{2: 200}[i]; p.LocalPref != wantLP {
				t.Errorf("%s from node %d: local-pref %d, want %d", vip, i, p.LocalPref, wantLP)
			}
			if wantAS := map[int][]uint32{0: {speakerAS}, 1: {speakerAS}}[i]; !slices.Equal(p.ASPath, wantAS) {
				t.Errorf("%s from node %d: AS path %v, want %v", vip, i, p.ASPath, wantAS)
			}
		}
	}
	var ses []Session
	b.speakers[0].Call(t, "Speaker.Sessions", struct{}{}, &ses)
	if len(ses) != 1 || ses[0].Peer != l.ClientIP().String() || ses[0].State != "established" || ses[0].PrefixesSent != 2 || ses[0].Uptime <= 0 {
		t.Errorf("node 0 sessions = %+v, want one established with %s, 2 prefixes sent", ses, l.ClientIP())
	}

	// Changing a VIP's attributes re-advertises it, replacing the path.
	b.set(t, 0, map[netip.Addr]PathAttrs{vip4: {Communities: []string{"65000:200"}}, vip6: attrs})
	deadline := time.Now().Add(awaitTimeout)
	for p := b.paths(t, vip4)[0]; !slices.Equal(p.Communities, []string{"65000:200"}); p = b.paths(t, vip4)[0] {
		if time.Now().After(deadline) {
			t.Fatalf("node 0's %s path keeps communities %v, want [65000:200]", vip4, p.Communities)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(b.paths(t, vip4)); n != 3 {
		t.Errorf("after the attribute change %s has %d paths, want 3", vip4, n)
	}

	// Set is idempotent: repeating it sends nothing. The next change's
	// UPDATE arrives after anything the repeat would have sent.
	before := b.updatesFrom(t, 0)
	b.set(t, 0, map[netip.Addr]PathAttrs{vip4: {Communities: []string{"65000:200"}}, vip6: attrs})
	b.set(t, 0, map[netip.Addr]PathAttrs{vip4: {Communities: []string{"65000:200"}}, vip6: attrs, vip4b: {}})
	b.await(t, map[netip.Addr][]int{vip4b: {0}})
	if got := b.updatesFrom(t, 0); got != before+1 {
		t.Errorf("router got %d UPDATEs from node 0 for a repeated Set and one new VIP, want 1", got-before)
	}

	// Set without a VIP withdraws it; the session stays up.
	b.set(t, 0, map[netip.Addr]PathAttrs{vip6: attrs})
	b.await(t, map[netip.Addr][]int{vip4: {1, 2}, vip4b: {}, vip6: {0, 1, 2}})
	b.awaitPeer(t, 0, true)

	// WithdrawAll withdraws the rest; the session stays up.
	b.speakers[0].Call(t, "Speaker.WithdrawAll", struct{}{}, &Timing{})
	b.await(t, map[netip.Addr][]int{vip4: {1, 2}, vip6: {1, 2}})
	b.awaitPeer(t, 0, true)

	// Close withdraws node 1's paths at once: its hold time is 90s, longer
	// than the wait, so only the withdrawal or the NOTIFICATION can do it.
	var closed Timing
	b.speakers[1].Call(t, "Speaker.Close", struct{}{}, &closed)
	gone := b.await(t, map[netip.Addr][]int{vip4: {2}, vip6: {2}})
	b.awaitPeer(t, 1, false)
	t.Logf("node 1 closed: router saw its paths gone %v after Close started", gone.Sub(closed.Start))
	if err := b.speakers[1].Try("Speaker.Set", map[netip.Addr]PathAttrs{vip4: {}}, &Timing{}); err == nil {
		t.Errorf("Set after Close succeeded")
	}

	// A cut link drops node 2's paths when the router's 3s hold timer expires.
	cut := time.Now()
	l.CutLink(2)
	b.await(t, map[netip.Addr][]int{vip4: {}, vip6: {}})
	t.Logf("node 2 link cut: paths gone after %v", time.Since(cut))

	// Restored, node 2 reconnects and announces again: the Speaker keeps
	// its paths across a session loss.
	l.RestoreLink(2)
	b.await(t, map[netip.Addr][]int{vip4: {2}, vip6: {2}})
}
