package bgprouter

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/raftvip/raftvip/test/lab"
)

// TestMain runs the helper when the binary was started as one, else the tests.
func TestMain(m *testing.M) {
	HelperMain(quietLog{}, map[string]any{"Echo": &Echo{}, "Announcer": &Announcer{}})
	os.Exit(m.Run())
}

// Echo is a service a test package adds to its helpers.
type Echo struct{}

// Say replies with its argument, or with the helper's interface addresses
// when asked for "addrs" (to show which namespace it runs in).
func (Echo) Say(in string, out *string) error {
	if in != "addrs" {
		*out = in
		return nil
	}
	addrs, err := net.InterfaceAddrs()
	for _, a := range addrs {
		*out += a.String() + " "
	}
	return err
}

// Announcer is a service that runs a plain gobgp speaker in a helper, for a
// router to learn paths from.
type Announcer struct {
	mu sync.Mutex
	sp *server.BgpServer
}

// AnnounceArgs asks for a speaker that dials the router at Router and
// advertises Prefixes with the next hop of each one's family.
type AnnounceArgs struct {
	Router             netip.Addr
	Prefixes           []netip.Prefix
	NextHop4, NextHop6 netip.Addr
}

// Announce starts the helper's speaker and advertises the prefixes.
func (a *Announcer) Announce(args AnnounceArgs, _ *struct{}) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	sp, err := startSpeaker(args.Router, 0)
	if err != nil {
		return err
	}
	a.sp = sp
	for _, p := range args.Prefixes {
		nh := args.NextHop4
		if p.Addr().Is6() {
			nh = args.NextHop6
		}
		if err := announce(sp, p, nh, false); err != nil {
			return err
		}
	}
	return nil
}

// TestRemote runs a router in a helper process in the lab's client namespace
// and drives it over its socket: the neighbors it was given, an empty RIB,
// Await, the test package's own service beside it, and paths from a speaker
// in a node, named by the node's index.
func TestRemote(t *testing.T) {
	l := lab.New(t, 2)
	dir := SocketDir(t)
	cfg := Config{AS: routerAS, RouterID: l.ClientIP(), ListenPort: 179, ListenAddrs: []string{"0.0.0.0", "::"},
		Neighbors: []Neighbor{{Address: l.NodeIP(0), AS: speakerAS}, {Address: l.NodeIP6(1), AS: speakerAS, HoldTime: 3 * time.Second}}}
	r := StartRemote(t, l, l.Client(), dir, cfg)

	peers := r.Peers(t)
	if len(peers) != 2 || peers[0].Address != l.NodeIP(0) || peers[1].Address != l.NodeIP6(1) {
		t.Fatalf("Peers = %+v, want %s and %s", peers, l.NodeIP(0), l.NodeIP6(1))
	}
	for _, p := range peers {
		if p.State == "established" || p.State == "" || p.UpdatesRecv != 0 {
			t.Errorf("peer %+v: want a known state short of established (no speaker runs), no updates", p)
		}
	}
	if paths := r.Paths(t); len(paths) != 0 {
		t.Errorf("Paths = %+v, want none", paths)
	}
	if at := r.Await(t, AwaitArgs{Want: View{p4: nil}, Timeout: waitLong}); at.IsZero() {
		t.Errorf("Await of an empty RIB returned a zero time")
	}
	err := r.Try(serviceName+".Await", AwaitArgs{Want: View{p4: {l.NodeIP(0)}}, Timeout: 200 * time.Millisecond}, &time.Time{})
	if err == nil || !strings.Contains(err.Error(), "RIB never matched") {
		t.Errorf("Await of a path nobody sends: %v", err)
	}

	// The helper runs in the client namespace: it holds the client's
	// address, which the root namespace never does.
	var addrs string
	r.Call(t, "Echo.Say", "addrs", &addrs)
	if !strings.Contains(addrs, l.ClientIP().String()+"/") {
		t.Errorf("helper's addresses %q lack the client's %s", addrs, l.ClientIP())
	}
	var echo string
	r.Call(t, "Echo.Say", "hello", &echo)
	if echo != "hello" {
		t.Errorf("Echo.Say = %q, want hello", echo)
	}

	// Node 1, the router's neighbor 1 over IPv6, announces both VIPs.
	vip4, vip6 := p4.Addr(), p6.Addr()
	if got := r.HostPaths(t, vip4); len(got) != 0 {
		t.Errorf("HostPaths(%s) before any announcement = %+v, want none", vip4, got)
	}
	since := time.Now()
	sp := StartProcess(t, l, l.Node(1), "speaker1", dir)
	sp.Call(t, "Announcer.Announce", AnnounceArgs{Router: l.ClientIP6(), Prefixes: []netip.Prefix{p4, p6},
		NextHop4: l.NodeIP(1), NextHop6: l.NodeIP6(1)}, &struct{}{})
	if at := r.AwaitHosts(t, map[netip.Addr][]int{vip4: {1}, vip6: {1}}, since, waitLong); !at.After(since) {
		t.Errorf("AwaitHosts = %v, want an arrival after %v", at, since)
	}
	for vip, nh := range map[netip.Addr]netip.Addr{vip4: l.NodeIP(1), vip6: l.NodeIP6(1)} {
		got := r.HostPaths(t, vip)
		if p, ok := got[1]; len(got) != 1 || !ok || p.Neighbor != l.NodeIP6(1) || p.NextHop != nh || !slices.Equal(p.ASPath, []uint32{speakerAS}) {
			t.Errorf("HostPaths(%s) = %+v, want node 1's path with next hop %s", vip, got, nh)
		}
	}
	if got := r.HostPaths(t, netip.MustParseAddr("198.51.100.101")); len(got) != 0 {
		t.Errorf("HostPaths of a VIP nobody announced = %+v, want none", got)
	}
	peers = r.Peers(t)
	if peers[1].State != "established" || peers[1].UpdatesRecv == 0 || peers[0].State == "established" {
		t.Errorf("Peers = %+v, want node 1 established with updates, node 0 not", peers)
	}
	if err := r.Try(serviceName+".Await", AwaitArgs{Want: View{p4: {}}, Timeout: 200 * time.Millisecond}, &time.Time{}); err == nil {
		t.Errorf("Await of %s gone succeeded while node 1 announces it", p4)
	}
}

// TestProcessWithoutRouter checks that a helper answers before its router is
// started, with an error, and that Try reports unknown methods.
func TestProcessWithoutRouter(t *testing.T) {
	l := lab.New(t, 1)
	p := StartProcess(t, l, l.Node(0), "idle", SocketDir(t))
	for _, m := range []string{"Paths", "Peers"} {
		if err := p.Try(serviceName+"."+m, struct{}{}, &[]Path{}); err == nil || err.Error() != "no router started" {
			t.Errorf("%s before Start: error %v, want no router started", m, err)
		}
	}
	if err := p.Try(serviceName+".Await", AwaitArgs{Timeout: time.Second}, &time.Time{}); err == nil || err.Error() != "no router started" {
		t.Errorf("Await before Start: error %v, want no router started", err)
	}
	if err := p.Try("Nobody.Home", struct{}{}, &struct{}{}); err == nil || !strings.Contains(err.Error(), "can't find service") {
		t.Errorf("unknown service: error %v", err)
	}
}

func TestTail(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 5, "a\nb\nc"},
		{"a\nb\nc\n\n", 1, "c"},
		{"", 3, ""},
	}
	for _, tt := range tests {
		if got := tail(tt.in, tt.n); got != tt.want {
			t.Errorf("tail(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
