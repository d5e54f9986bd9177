// The test router listens; Go's listeners default to Multipath TCP, which refuses
// the TCP options gobgp sets on its sockets.

//go:debug multipathtcp=0

// Package bgp is the end-to-end test of raftvip's BGP mode: three real agents
// (--mode bgp) in the nodes of a netns lab peer with a gobgp router in the
// client namespace, and the test asserts on what the router's RIB holds.
//
// The router runs in a process of its own, the test binary re-executed inside
// the client namespace by `ip netns exec`: gobgp opens sockets from goroutines
// it starts itself, which a namespace switch of one thread would not cover. The
// test drives it over net/rpc on a Unix socket, which is not tied to a network
// namespace.
package bgp

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// RouterConfig describes the test router: a plain gobgp server with passive
// neighbors, standing in for a top-of-rack router.
type RouterConfig struct {
	AS          uint32
	RouterID    netip.Addr
	ListenPort  int32
	ListenAddrs []string
	Neighbors   []Neighbor
}

// Neighbor is one raftvip node as the router sees it.
type Neighbor struct {
	Address  netip.Addr
	AS       uint32
	HoldTime time.Duration
}

// RoutePath is one path in the router's RIB.
type RoutePath struct {
	Prefix   netip.Prefix
	Neighbor netip.Addr
	NextHop  netip.Addr
}

// PeerView is the router's view of one neighbor.
type PeerView struct {
	Address netip.Addr
	State   string
}

// families are both unicast AFI-SAFIs, as raftvip configures its sessions.
var families = []*api.Family{
	{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST},
	{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST},
}

// router is a running test router.
type router struct {
	s      *server.BgpServer
	cancel context.CancelFunc
	// last is the time (Unix ns) of the latest RIB-affecting event (an update
	// received or a session change); changed signals one.
	last    atomic.Int64
	changed chan struct{}
}

// startRouter starts a router with cfg, watching its adj-RIB-in and sessions to
// timestamp arrivals.
func startRouter(cfg RouterConfig) (*router, error) {
	r := &router{s: server.NewBgpServer(), changed: make(chan struct{}, 1)}
	go r.s.Serve()
	ctx := context.Background()
	err := r.s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: cfg.AS, RouterId: cfg.RouterID.String(), ListenPort: cfg.ListenPort, ListenAddresses: cfg.ListenAddrs,
	}})
	if err != nil {
		return nil, fmt.Errorf("router: start: %w", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	err = r.s.WatchEvent(wctx, &api.WatchEventRequest{
		Peer:  &api.WatchEventRequest_Peer{},
		Table: &api.WatchEventRequest_Table{Filters: []*api.WatchEventRequest_Table_Filter{{Type: api.WatchEventRequest_Table_Filter_ADJIN}}},
	}, func(*api.WatchEventResponse) { r.notify() })
	if err != nil {
		r.stop()
		return nil, fmt.Errorf("router: watch: %w", err)
	}
	for _, n := range cfg.Neighbors {
		p := &api.Peer{
			Conf:      &api.PeerConf{NeighborAddress: n.Address.String(), PeerAsn: n.AS},
			Transport: &api.Transport{PassiveMode: true},
		}
		if n.HoldTime > 0 {
			h := uint64(n.HoldTime / time.Second)
			p.Timers = &api.Timers{Config: &api.TimersConfig{HoldTime: h, KeepaliveInterval: max(h/3, 1)}}
		}
		for _, f := range families {
			p.AfiSafis = append(p.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{Family: f, Enabled: true}})
		}
		if err := r.s.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
			r.stop()
			return nil, fmt.Errorf("router: add neighbor %s: %w", n.Address, err)
		}
	}
	return r, nil
}

// notify records the time of an event and wakes a waiting await.
func (r *router) notify() {
	r.last.Store(time.Now().UnixNano())
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// stop shuts the router down.
func (r *router) stop() {
	_ = r.s.StopBgp(context.Background(), &api.StopBgpRequest{})
	if r.cancel != nil {
		r.cancel()
	}
}

// paths lists every path (best or not) of both unicast families, sorted.
func (r *router) paths(ctx context.Context) ([]RoutePath, error) {
	var out []RoutePath
	for _, f := range families {
		var derr error
		err := r.s.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: f}, func(d *api.Destination) {
			for _, p := range d.Paths {
				rp, err := decodePath(d.Prefix, p)
				if err != nil {
					derr = err
					return
				}
				out = append(out, rp)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("router: list paths: %w", err)
		}
		if derr != nil {
			return nil, derr
		}
	}
	slices.SortFunc(out, func(a, b RoutePath) int {
		return cmp.Or(a.Prefix.Addr().Compare(b.Prefix.Addr()), a.Neighbor.Compare(b.Neighbor))
	})
	return out, nil
}

// decodePath turns one gobgp API path into a RoutePath.
func decodePath(prefix string, p *api.Path) (RoutePath, error) {
	var rp RoutePath
	var err error
	if rp.Prefix, err = netip.ParsePrefix(prefix); err != nil {
		return rp, fmt.Errorf("router: prefix %q: %w", prefix, err)
	}
	if rp.Neighbor, err = netip.ParseAddr(p.NeighborIp); err != nil {
		return rp, fmt.Errorf("router: neighbor of %s %q: %w", prefix, p.NeighborIp, err)
	}
	rp.Neighbor = rp.Neighbor.Unmap()
	attrs, err := apiutil.GetNativePathAttributes(p)
	if err != nil {
		return rp, fmt.Errorf("router: attributes of %s: %w", prefix, err)
	}
	for _, a := range attrs {
		switch a := a.(type) {
		case *bgppkt.PathAttributeNextHop:
			rp.NextHop, _ = netip.AddrFromSlice(a.Value)
		case *bgppkt.PathAttributeMpReachNLRI:
			rp.NextHop, _ = netip.AddrFromSlice(a.Nexthop)
		}
	}
	rp.NextHop = rp.NextHop.Unmap()
	return rp, nil
}

// peers lists the router's neighbors.
func (r *router) peers(ctx context.Context) ([]PeerView, error) {
	var out []PeerView
	err := r.s.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		a, _ := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		out = append(out, PeerView{Address: a, State: strings.ToLower(p.GetState().GetSessionState().String())})
	})
	slices.SortFunc(out, func(a, b PeerView) int { return a.Address.Compare(b.Address) })
	return out, err
}

// view maps each prefix to the neighbors that sent a path for it.
type view map[netip.Prefix][]netip.Addr

// viewOf builds the view of a path list.
func viewOf(paths []RoutePath) view {
	v := view{}
	for _, p := range paths {
		v[p.Prefix] = append(v[p.Prefix], p.Neighbor)
	}
	for k := range v {
		slices.SortFunc(v[k], netip.Addr.Compare)
	}
	return v
}

// matches reports whether v holds exactly the wanted neighbors for every prefix
// in want (an empty list: the prefix is absent).
func (v view) matches(want view) bool {
	for p, ns := range want {
		if !slices.Equal(v[p], slices.SortedFunc(slices.Values(ns), netip.Addr.Compare)) {
			return false
		}
	}
	return true
}

// String summarizes a view for failure messages.
func (v view) String() string {
	var b strings.Builder
	for _, p := range slices.SortedFunc(maps.Keys(v), func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }) {
		fmt.Fprintf(&b, "%s<-%v ", p, v[p])
	}
	return strings.TrimSpace(b.String())
}

// await waits until the RIB matches want and returns the time of the latest RIB
// event, which must be after since: when what made it match arrived, not when the
// poll noticed. With a zero since it returns when it saw the match.
func (r *router) await(ctx context.Context, want view, since time.Time) (time.Time, error) {
	var got view
	for {
		paths, err := r.paths(ctx)
		if err != nil {
			return time.Time{}, err
		}
		got = viewOf(paths)
		if got.matches(want) {
			if since.IsZero() {
				return time.Now(), nil
			}
			if t := time.Unix(0, r.last.Load()); t.After(since) {
				return t, nil
			}
		}
		select {
		case <-r.changed:
			// Let a burst of updates land before listing the RIB again.
			time.Sleep(10 * time.Millisecond)
		case <-time.After(100 * time.Millisecond):
			// A hold-timer expiry drops paths without a per-path event: poll too.
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("router: RIB never matched %v; last seen %v: %w", want, got, ctx.Err())
		}
	}
}
