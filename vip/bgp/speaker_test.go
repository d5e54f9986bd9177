package bgp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/raftvip/raftvip/test/bgprouter"
)

var (
	loopback = netip.MustParseAddr("127.0.0.1")
	nh4      = netip.MustParseAddr("198.51.100.11")
	nh6      = netip.MustParseAddr("2001:db8:100::11")
)

// quietLog discards log output.
var quietLog = slog.New(slog.DiscardHandler)

// freePort returns a TCP port nothing listens on right now.
func freePort(t testing.TB) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// loopbackPair starts a router on a loopback port and a speaker (eBGP, next
// hops nh4 and nh6) peering with it, and waits for the session.
func loopbackPair(t testing.TB) (*Speaker, *bgprouter.Router) {
	t.Helper()
	port := freePort(t)
	rt, err := bgprouter.Start(bgprouter.Config{
		AS: routerAS, RouterID: netip.MustParseAddr("198.51.100.50"), ListenPort: int32(port), ListenAddrs: []string{"127.0.0.1"},
		Neighbors: []bgprouter.Neighbor{{Address: loopback, AS: speakerAS}},
	}, slogAdapter{l: quietLog})
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	t.Cleanup(rt.Stop)
	sp, err := New(Config{AS: speakerAS, NextHop4: nh4, NextHop6: nh6, Logger: quietLog,
		Peers: []Peer{{Address: loopback, AS: routerAS, Port: port}}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = sp.Close(context.Background()) })
	deadline := time.Now().Add(awaitTimeout)
	for {
		ses, err := sp.Sessions(context.Background())
		if err != nil {
			t.Fatalf("Sessions: %v", err)
		}
		if len(ses) == 1 && ses[0].State == "established" {
			return sp, rt
		}
		if time.Now().After(deadline) {
			t.Fatalf("session not established: %+v", ses)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gaugeValue reads a gauge or a counter.
func gaugeValue(t testing.TB, g prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// seriesCount is how many series a collector has.
func seriesCount(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 100)
	c.Collect(ch)
	close(ch)
	return len(ch)
}

// awaitView waits until the router's RIB matches want (an empty list: absent).
func awaitView(t testing.TB, rt *bgprouter.Router, want bgprouter.View) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), awaitTimeout)
	defer cancel()
	if _, err := rt.Await(ctx, want, time.Time{}); err != nil {
		t.Fatal(err)
	}
}

// routerPaths returns the router's paths by prefix.
func routerPaths(t testing.TB, rt *bgprouter.Router) map[netip.Prefix]bgprouter.Path {
	t.Helper()
	paths, err := rt.Paths(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.Prefix]bgprouter.Path{}
	for _, p := range paths {
		out[p.Prefix] = p
	}
	return out
}

// TestSpeakerLoopback drives one speaker against an in-process router over
// loopback: announcement with explicit next hops and attributes, an
// attribute change, withdrawal, metrics, and Close.
func TestSpeakerLoopback(t *testing.T) {
	sp, rt := loopbackPair(t)
	ctx := context.Background()
	lo := []netip.Addr{loopback}

	attrs := PathAttrs{Communities: []string{"65000:100"}, LocalPref: 200}
	if err := sp.Set(ctx, map[netip.Addr]PathAttrs{vip4: attrs, vip6: {}}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	awaitView(t, rt, bgprouter.View{host(vip4): lo, host(vip6): lo})
	paths := routerPaths(t, rt)
	// The next hop is the configured node address, not the session's
	// loopback address, in both families.
	if p := paths[host(vip4)]; p.NextHop != nh4 || !slices.Equal(p.Communities, []string{"65000:100"}) || p.LocalPref != 0 {
		t.Errorf("%s at router = %+v, want next hop %s, [65000:100], no local-pref (eBGP)", vip4, p, nh4)
	}
	if p := paths[host(vip6)]; p.NextHop != nh6 || len(p.Communities) != 0 {
		t.Errorf("%s at router = %+v, want next hop %s, no communities", vip6, p, nh6)
	}
	if v := gaugeValue(t, advertised.WithLabelValues("ipv4")); v != 1 {
		t.Errorf("advertised{ipv4} = %v, want 1", v)
	}
	if v := gaugeValue(t, advertised.WithLabelValues("ipv6")); v != 1 {
		t.Errorf("advertised{ipv6} = %v, want 1", v)
	}
	if v := gaugeValue(t, sessionUp.WithLabelValues("127.0.0.1")); v != 1 {
		t.Errorf("session_up{127.0.0.1} = %v, want 1", v)
	}
	if v := gaugeValue(t, sessionTransitions.WithLabelValues("127.0.0.1", "established")); v < 1 {
		t.Errorf("session_transitions_total{127.0.0.1,established} = %v, want at least 1", v)
	}
	ses, err := sp.Sessions(ctx)
	if err != nil || len(ses) != 1 || ses[0].PrefixesSent != 2 {
		t.Errorf("Sessions = %+v, %v; want 2 prefixes sent", ses, err)
	}

	// A community change re-advertises; the same set again changes nothing.
	changed := map[netip.Addr]PathAttrs{vip4: {Communities: []string{"no-export", "65000:7"}}, vip6: {}}
	for range 2 {
		if err := sp.Set(ctx, changed); err != nil {
			t.Fatalf("Set: %v", err)
		}
	}
	deadline := time.Now().Add(awaitTimeout)
	for p := routerPaths(t, rt)[host(vip4)]; !slices.Equal(p.Communities, []string{"65000:7", "no-export"}); p = routerPaths(t, rt)[host(vip4)] {
		if time.Now().After(deadline) {
			t.Fatalf("%s communities at router = %v, want [65000:7 no-export]", vip4, p.Communities)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Dropping a VIP from the set withdraws it.
	if err := sp.Set(ctx, map[netip.Addr]PathAttrs{vip6: {}}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	awaitView(t, rt, bgprouter.View{host(vip4): nil, host(vip6): lo})
	if v := gaugeValue(t, advertised.WithLabelValues("ipv4")); v != 0 {
		t.Errorf("advertised{ipv4} = %v after withdrawal, want 0", v)
	}

	// Close withdraws the rest and ends the session.
	if err := sp.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	awaitView(t, rt, bgprouter.View{host(vip6): nil})
	if err := sp.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := sp.Set(ctx, map[netip.Addr]PathAttrs{vip4: {}}); !errors.Is(err, errClosed) {
		t.Errorf("Set after Close = %v, want %v", err, errClosed)
	}
	if err := sp.WithdrawAll(ctx); !errors.Is(err, errClosed) {
		t.Errorf("WithdrawAll after Close = %v, want %v", err, errClosed)
	}
	if _, err := sp.Sessions(ctx); !errors.Is(err, errClosed) {
		t.Errorf("Sessions after Close = %v, want %v", err, errClosed)
	}
	if n := seriesCount(sessionUp); n != 0 {
		t.Errorf("session_up has %d series after Close, want 0", n)
	}
}

// TestWithdrawAllKeepsSession checks that WithdrawAll empties the router's
// view of the node while the session stays up, and that a later Set
// announces again.
func TestWithdrawAllKeepsSession(t *testing.T) {
	sp, rt := loopbackPair(t)
	ctx := context.Background()
	lo := []netip.Addr{loopback}
	want := map[netip.Addr]PathAttrs{vip4: {}, vip4b: {}, vip6: {}}
	if err := sp.Set(ctx, want); err != nil {
		t.Fatalf("Set: %v", err)
	}
	awaitView(t, rt, bgprouter.View{host(vip4): lo, host(vip4b): lo, host(vip6): lo})
	if err := sp.WithdrawAll(ctx); err != nil {
		t.Fatalf("WithdrawAll: %v", err)
	}
	awaitView(t, rt, bgprouter.View{host(vip4): nil, host(vip4b): nil, host(vip6): nil})
	if ses, err := sp.Sessions(ctx); err != nil || ses[0].State != "established" || ses[0].PrefixesSent != 0 {
		t.Errorf("Sessions after WithdrawAll = %+v, %v; want established, 0 sent", ses, err)
	}
	if err := sp.Set(ctx, want); err != nil {
		t.Fatalf("Set: %v", err)
	}
	awaitView(t, rt, bgprouter.View{host(vip4): lo, host(vip4b): lo, host(vip6): lo})
}

// TestNewUnreachablePeer checks that a peer nobody answers for neither
// fails nor blocks New, shows as down, and does not stop Set or Close.
func TestNewUnreachablePeer(t *testing.T) {
	port := freePort(t)
	sp, err := New(Config{AS: speakerAS, NextHop4: nh4, Logger: quietLog,
		Peers: []Peer{{Address: loopback, AS: routerAS, Port: port}}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx := context.Background()
	if err := sp.Set(ctx, map[netip.Addr]PathAttrs{vip4: {}}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	ses, err := sp.Sessions(ctx)
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	if len(ses) != 1 || ses[0].Peer != "127.0.0.1" || ses[0].State == "established" || ses[0].State == "" ||
		ses[0].Uptime != 0 || ses[0].PrefixesSent != 0 {
		t.Errorf("Sessions = %+v, want one down session with 127.0.0.1", ses)
	}
	if err := sp.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestSetRejects checks that a bad want map is refused whole: nothing of
// it is advertised and the previous set stays.
func TestSetRejects(t *testing.T) {
	sp, err := New(Config{AS: speakerAS, NextHop4: nh4, Logger: quietLog,
		Peers: []Peer{{Address: loopback, AS: routerAS, Port: freePort(t)}}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx := context.Background()
	t.Cleanup(func() { _ = sp.Close(ctx) })
	if err := sp.Set(ctx, map[netip.Addr]PathAttrs{vip4: {}}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	tests := []struct {
		name    string
		want    map[netip.Addr]PathAttrs
		wantErr string
	}{
		{"no IPv6 next hop", map[netip.Addr]PathAttrs{vip4b: {}, vip6: {}}, "no ipv6 address to use as next hop"},
		{"invalid address", map[netip.Addr]PathAttrs{vip4b: {}, {}: {}}, "invalid VIP address"},
		{"zoned address", map[netip.Addr]PathAttrs{netip.MustParseAddr("fe80::1%eth0"): {}}, "zoned"},
		{"bad community", map[netip.Addr]PathAttrs{vip4b: {Communities: []string{"65536:1"}}}, `bad community "65536:1"`},
		{"duplicate after unmapping", map[netip.Addr]PathAttrs{vip4b: {}, netip.AddrFrom16(vip4b.As16()): {}}, "given twice"},
	}
	for _, tt := range tests {
		err := sp.Set(ctx, tt.want)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: Set error = %v, want one containing %q", tt.name, err, tt.wantErr)
		}
		sp.mu.Lock()
		got := sortedVIPs(sp.adv)
		sp.mu.Unlock()
		if !slices.Equal(got, []netip.Addr{vip4}) {
			t.Errorf("%s: advertised %v after a refused Set, want [%s]", tt.name, got, vip4)
		}
	}
	// A 4in6 key is the same VIP as its IPv4 form: no change, no error.
	if err := sp.Set(ctx, map[netip.Addr]PathAttrs{netip.AddrFrom16(vip4.As16()): {}}); err != nil {
		t.Errorf("Set with a 4in6 key: %v", err)
	}
}

// TestSetCanceled checks that Set stops between paths when ctx ends.
func TestSetCanceled(t *testing.T) {
	sp, err := New(Config{AS: speakerAS, NextHop4: nh4, Logger: quietLog,
		Peers: []Peer{{Address: loopback, AS: routerAS, Port: freePort(t)}}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = sp.Close(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sp.Set(ctx, map[netip.Addr]PathAttrs{vip4: {}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Set with a canceled context = %v, want context.Canceled", err)
	}
	if n := len(sp.adv); n != 0 {
		t.Errorf("%d VIPs recorded after a canceled Set, want 0", n)
	}
}

func TestNewValidation(t *testing.T) {
	peer := Peer{Address: loopback, AS: routerAS, Port: 1}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"AS 0", Config{NextHop4: nh4, Peers: []Peer{peer}}, "AS 0 is reserved"},
		{"no next hop", Config{AS: 1, Peers: []Peer{peer}}, "no next hop"},
		{"v6 as v4 next hop", Config{AS: 1, NextHop4: nh6, Peers: []Peer{peer}}, "is not an IPv4 address"},
		{"v4 as v6 next hop", Config{AS: 1, NextHop4: nh4, NextHop6: nh4, Peers: []Peer{peer}}, "is not an IPv6 address"},
		{"v6-only without router ID", Config{AS: 1, NextHop6: nh6, Peers: []Peer{peer}}, "router ID"},
		{"v6 router ID", Config{AS: 1, RouterID: nh6, NextHop4: nh4, Peers: []Peer{peer}}, "must be a non-zero IPv4"},
		{"zero router ID", Config{AS: 1, RouterID: netip.IPv4Unspecified(), NextHop4: nh4, Peers: []Peer{peer}}, "must be a non-zero IPv4"},
		{"listen port", Config{AS: 1, NextHop4: nh4, ListenPort: 70000, Peers: []Peer{peer}}, "listen port 70000"},
		{"negative listen port", Config{AS: 1, NextHop4: nh4, ListenPort: -2, Peers: []Peer{peer}}, "listen port -2"},
		{"no peers", Config{AS: 1, NextHop4: nh4}, "no peers"},
		{"peer without address", Config{AS: 1, NextHop4: nh4, Peers: []Peer{{AS: 1}}}, "without an address"},
		{"peer AS 0", Config{AS: 1, NextHop4: nh4, Peers: []Peer{{Address: loopback}}}, "peer 127.0.0.1: AS 0"},
		{"duplicate peer", Config{AS: 1, NextHop4: nh4, Peers: []Peer{peer, {Address: netip.AddrFrom16(loopback.As16()), AS: 2}}}, "configured twice"},
		{"bad hold time", Config{AS: 1, NextHop4: nh4, Peers: []Peer{{Address: loopback, AS: 1, HoldTime: time.Second}}}, "hold time 1s"},
	}
	for _, tt := range tests {
		sp, err := New(tt.cfg)
		if err == nil {
			_ = sp.Close(context.Background())
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: New error = %v, want one containing %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{AS: 1, NextHop4: nh4, Peers: []Peer{{Address: loopback, AS: 2}}}.validate()
	if err != nil {
		t.Fatal(err)
	}
	if c.RouterID != nh4 || c.ListenPort != -1 {
		t.Errorf("defaults: router ID %s, listen port %d; want %s, -1", c.RouterID, c.ListenPort, nh4)
	}
	rid := netip.MustParseAddr("192.168.255.1")
	c, err = Config{AS: 1, RouterID: rid, NextHop6: nh6, ListenPort: 1179, Peers: []Peer{{Address: loopback, AS: 2}}}.validate()
	if err != nil {
		t.Fatal(err)
	}
	if c.RouterID != rid || c.ListenPort != 1179 {
		t.Errorf("explicit: router ID %s, listen port %d; want %s, 1179", c.RouterID, c.ListenPort, rid)
	}
}

func TestAPIPeer(t *testing.T) {
	src4 := netip.MustParseAddr("198.51.100.11")
	p := apiPeer(Peer{Address: netip.MustParseAddr("198.51.100.1"), AS: 64500, Port: 1179, Password: "pw",
		Multihop: 3, HoldTime: 9 * time.Second}, src4)
	if c := p.Conf; c.NeighborAddress != "198.51.100.1" || c.PeerAsn != 64500 || c.AuthPassword != "pw" {
		t.Errorf("conf = %v", c)
	}
	if tr := p.Transport; tr.RemotePort != 1179 || tr.LocalAddress != "198.51.100.11" || tr.PassiveMode {
		t.Errorf("transport = %v", tr)
	}
	if tc := p.Timers.Config; tc.HoldTime != 9 || tc.KeepaliveInterval != 3 || tc.ConnectRetry != 5 {
		t.Errorf("timers = %v", tc)
	}
	if m := p.EbgpMultihop; m == nil || !m.Enabled || m.MultihopTtl != 3 {
		t.Errorf("multihop = %v", m)
	}
	var fams []api.Family_Afi
	for _, a := range p.AfiSafis {
		if !a.Config.Enabled || a.Config.Family.Safi != api.Family_SAFI_UNICAST {
			t.Errorf("afi-safi %v", a.Config)
		}
		fams = append(fams, a.Config.Family.Afi)
	}
	if !slices.Equal(fams, []api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6}) {
		t.Errorf("families %v, want IPv4 and IPv6 unicast", fams)
	}

	// Defaults: no multihop, gobgp's hold time; the source address only
	// applies to peers of its family.
	p = apiPeer(Peer{Address: netip.MustParseAddr("2001:db8:100::1"), AS: 64500}, src4)
	if p.EbgpMultihop != nil || p.Timers.Config.HoldTime != 0 || p.Transport.LocalAddress != "" || p.Transport.RemotePort != 0 {
		t.Errorf("defaults: multihop %v, timers %v, transport %v", p.EbgpMultihop, p.Timers.Config, p.Transport)
	}
}

func TestSlogAdapter(t *testing.T) {
	var buf bytes.Buffer
	a := slogAdapter{l: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	a.Warn("peer flapped", map[string]any{"Topic": "Peer", "Key": "198.51.100.1", "_facility": "config"})
	a.Info("noise", nil)
	out := buf.String()
	if !strings.Contains(out, `level=WARN msg="peer flapped" Key=198.51.100.1 Topic=Peer`) || strings.Contains(out, "_facility") {
		t.Errorf("warn line = %q", out)
	}
	if strings.Contains(out, "noise") {
		t.Errorf("gobgp info line logged at info level: %q", out)
	}
	if a.GetLevel() >= 5 { // gobgp's DebugLevel
		t.Errorf("GetLevel = %d with an info handler, want below debug", a.GetLevel())
	}
	dbg := slogAdapter{l: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if dbg.GetLevel() != 5 {
		t.Errorf("GetLevel = %d with a debug handler, want 5", dbg.GetLevel())
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "code logic bug") {
			t.Errorf("Panic recovered %v, want a panic with the message", r)
		}
	}()
	a.Panic("code logic bug", nil)
}
