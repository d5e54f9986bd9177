// The router listens; Go's listeners default to Multipath TCP, which refuses
// the TCP options gobgp sets on its sockets.

//go:debug multipathtcp=0

package bgprouter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	bgppkt "github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
)

const (
	routerAS  = 64500
	speakerAS = 64512
	// waitLong bounds every wait: a failure deadline, never a measured budget.
	waitLong = time.Minute
)

var loopback = netip.MustParseAddr("127.0.0.1")

// quietLog is a gobgp logger that drops everything.
type quietLog struct{}

var _ gobgplog.Logger = quietLog{}

func (quietLog) Panic(msg string, _ gobgplog.Fields) { panic(msg) }
func (quietLog) Fatal(msg string, _ gobgplog.Fields) { panic(msg) }
func (quietLog) Error(string, gobgplog.Fields)       {}
func (quietLog) Warn(string, gobgplog.Fields)        {}
func (quietLog) Info(string, gobgplog.Fields)        {}
func (quietLog) Debug(string, gobgplog.Fields)       {}
func (quietLog) SetLevel(gobgplog.LogLevel)          {}
func (quietLog) GetLevel() gobgplog.LogLevel         { return gobgplog.PanicLevel }

// startLoopback starts a router on a free loopback port, accepting
// 127.0.0.1 (AS speakerAS), and a plain gobgp speaker dialling it from
// there. The session comes up in the background: a test waits for the
// paths it announces.
func startLoopback(t *testing.T) (*Router, *server.BgpServer) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	rt, err := Start(Config{AS: routerAS, RouterID: netip.MustParseAddr("198.51.100.50"), ListenPort: int32(port),
		ListenAddrs: []string{"127.0.0.1"}, Neighbors: []Neighbor{{Address: loopback, AS: speakerAS}}}, quietLog{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(rt.Stop)
	sp, err := startSpeaker(loopback, uint32(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sp.StopBgp(context.Background(), &api.StopBgpRequest{}) })
	return rt, sp
}

// startSpeaker starts a plain gobgp server of AS speakerAS that does not
// listen and dials a router of AS routerAS at addr, on port (0: 179), with
// both unicast families.
func startSpeaker(addr netip.Addr, port uint32) (*server.BgpServer, error) {
	sp := server.NewBgpServer(server.LoggerOption(quietLog{}))
	go sp.Serve()
	ctx := context.Background()
	if err := sp.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: speakerAS, RouterId: "198.51.100.51", ListenPort: -1}}); err != nil {
		return nil, fmt.Errorf("speaker: %w", err)
	}
	peer := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: addr.String(), PeerAsn: routerAS},
		Transport: &api.Transport{RemotePort: port},
	}
	for _, f := range families {
		peer.AfiSafis = append(peer.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{Family: f, Enabled: true}})
	}
	if err := sp.AddPeer(ctx, &api.AddPeerRequest{Peer: peer}); err != nil {
		_ = sp.StopBgp(ctx, &api.StopBgpRequest{})
		return nil, fmt.Errorf("speaker peer %s: %w", addr, err)
	}
	return sp, nil
}

// announce has sp advertise (or withdraw) p, with next hop nh and communities.
func announce(sp *server.BgpServer, p netip.Prefix, nh netip.Addr, withdraw bool, communities ...uint32) error {
	var extra []bgppkt.PathAttributeInterface
	if len(communities) > 0 {
		extra = append(extra, bgppkt.NewPathAttributeCommunities(communities))
	}
	path, err := newAPIPath(p, "", nh, extra...)
	if err != nil {
		return err
	}
	path.IsWithdraw = withdraw
	if withdraw {
		err = sp.DeletePath(context.Background(), &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Path: path})
	} else {
		_, err = sp.AddPath(context.Background(), &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path})
	}
	if err != nil {
		return fmt.Errorf("announce %s (withdraw %v): %w", p, withdraw, err)
	}
	return nil
}

// mustAnnounce is announce that fails the test on error.
func mustAnnounce(t *testing.T, sp *server.BgpServer, p netip.Prefix, nh netip.Addr, withdraw bool, communities ...uint32) {
	t.Helper()
	if err := announce(sp, p, nh, withdraw, communities...); err != nil {
		t.Fatal(err)
	}
}

// TestRouterLoopback drives a router over loopback: arrivals timestamped by
// Await, the decoded RIB, the neighbor's state and counters, withdrawal.
func TestRouterLoopback(t *testing.T) {
	rt, sp := startLoopback(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()

	since := time.Now()
	mustAnnounce(t, sp, p4, n1, false, 65000<<16|7, 0xffffff01)
	mustAnnounce(t, sp, p6, n3, false)
	at, err := rt.Await(ctx, View{p4: {loopback}, p6: {loopback}}, since)
	if err != nil {
		t.Fatal(err)
	}
	if !at.After(since) || at.After(time.Now()) {
		t.Errorf("Await = %v, want the arrival, after %v and not in the future", at, since)
	}
	paths, err := rt.Paths(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Path{
		{Prefix: p4, Neighbor: loopback, NextHop: n1, Communities: []string{"65000:7", "no-export"}, ASPath: []uint32{speakerAS}},
		{Prefix: p6, Neighbor: loopback, NextHop: n3, ASPath: []uint32{speakerAS}},
	}
	if len(paths) != len(want) {
		t.Fatalf("Paths = %+v, want %+v", paths, want)
	}
	for i := range want {
		g, w := paths[i], want[i]
		if g.Prefix != w.Prefix || g.Neighbor != w.Neighbor || g.NextHop != w.NextHop || g.LocalPref != 0 ||
			!slices.Equal(g.Communities, w.Communities) || !slices.Equal(g.ASPath, w.ASPath) {
			t.Errorf("path %d = %+v, want %+v", i, g, w)
		}
	}
	peers, err := rt.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 1 || peers[0].Address != loopback || peers[0].State != "established" || peers[0].UpdatesRecv < 1 {
		t.Errorf("Peers = %+v, want 127.0.0.1 established with updates received", peers)
	}

	// A withdrawal: the IPv4 prefix goes, the IPv6 one stays.
	since = time.Now()
	mustAnnounce(t, sp, p4, n1, true)
	if at, err = rt.Await(ctx, View{p4: nil, p6: {loopback}}, since); err != nil || !at.After(since) {
		t.Errorf("Await after withdrawal = %v, %v; want a time after %v", at, err, since)
	}

	// A zero since returns as soon as the RIB matches.
	before := time.Now()
	if at, err = rt.Await(ctx, View{p6: {loopback}}, time.Time{}); err != nil || at.Before(before) {
		t.Errorf("Await with zero since = %v, %v; want the time of the check", at, err)
	}
}

// TestAwaitTimesOut checks that Await gives up with the context, saying what
// it waited for and what it saw, and that a match without an event after
// since does not count.
func TestAwaitTimesOut(t *testing.T) {
	rt, sp := startLoopback(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	mustAnnounce(t, sp, p4, n1, false)
	if _, err := rt.Await(ctx, View{p4: {loopback}}, time.Time{}); err != nil {
		t.Fatal(err)
	}

	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := rt.Await(short, View{p4: nil}, time.Time{})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "never matched 198.51.100.100/32<-[]; last seen 198.51.100.100/32<-[127.0.0.1]") {
		t.Errorf("Await of an unmet view: %v", err)
	}
	// The RIB matches, but nothing arrived after since.
	short, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := rt.Await(short, View{p4: {loopback}}, time.Now()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Await with since after the last event: %v, want a timeout", err)
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := Start(Config{AS: routerAS, ListenPort: -1}, quietLog{}); err == nil || !strings.HasPrefix(err.Error(), "router: start:") {
		t.Errorf("no router ID: error %v, want router: start", err)
	}
	twice := []Neighbor{{Address: loopback, AS: speakerAS}, {Address: loopback, AS: speakerAS}}
	rt, err := Start(Config{AS: routerAS, RouterID: netip.MustParseAddr("198.51.100.50"), ListenPort: -1, Neighbors: twice}, quietLog{})
	if err == nil || !strings.HasPrefix(err.Error(), "router: add neighbor 127.0.0.1:") {
		t.Errorf("a neighbor twice: error %v, want router: add neighbor", err)
	}
	if rt != nil {
		t.Errorf("a neighbor twice: got a router")
	}
}
