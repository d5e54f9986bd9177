package bgp

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
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

// RouterConfig describes the test router: a plain gobgp server that only
// listens (its neighbors are passive), standing in for a top-of-rack router.
type RouterConfig struct {
	// AS and RouterID identify the router.
	AS       uint32
	RouterID netip.Addr
	// ListenPort and ListenAddrs are where it accepts sessions.
	ListenPort  int32
	ListenAddrs []string
	// Neighbors are the speakers it accepts.
	Neighbors []Neighbor
}

// Neighbor is one speaker as the router sees it.
type Neighbor struct {
	Address  netip.Addr
	AS       uint32
	Password string
	HoldTime time.Duration
}

// RoutePath is one path in the router's RIB, decoded for assertions.
type RoutePath struct {
	Prefix      netip.Prefix
	Neighbor    netip.Addr
	NextHop     netip.Addr
	Communities []string
	LocalPref   uint32 // 0: no LOCAL_PREF attribute
	ASPath      []uint32
}

// PeerView is the router's view of one neighbor.
type PeerView struct {
	Address     netip.Addr
	State       string
	UpdatesRecv uint64
}

// router is a running test router.
type router struct {
	s      *server.BgpServer
	cancel context.CancelFunc
	// last is the time (Unix ns) of the latest RIB-affecting event: an
	// update received or a session change; changed signals one.
	last    atomic.Int64
	changed chan struct{}
}

// startRouter starts a router with cfg. It watches its adj-RIB-in and
// session changes to timestamp arrivals for the benchmarks.
func startRouter(cfg RouterConfig, log *slog.Logger) (*router, error) {
	r := &router{
		s:       server.NewBgpServer(server.LoggerOption(slogAdapter{l: log})),
		changed: make(chan struct{}, 1),
	}
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
			Conf:      &api.PeerConf{NeighborAddress: n.Address.String(), PeerAsn: n.AS, AuthPassword: n.Password},
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
		case *bgppkt.PathAttributeCommunities:
			for _, c := range a.Value {
				rp.Communities = append(rp.Communities, formatCommunity(c))
			}
		case *bgppkt.PathAttributeLocalPref:
			rp.LocalPref = a.Value
		case *bgppkt.PathAttributeAsPath:
			for _, seg := range a.Value {
				rp.ASPath = append(rp.ASPath, seg.GetAS()...)
			}
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
		out = append(out, PeerView{
			Address:     a,
			State:       stateName(p.GetState().GetSessionState()),
			UpdatesRecv: p.GetState().GetMessages().GetReceived().GetUpdate(),
		})
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

// matches reports whether v holds exactly the wanted neighbors for every
// prefix in want (an empty list: the prefix is absent).
func (v view) matches(want view) bool {
	for p, ns := range want {
		got := v[p]
		sorted := slices.SortedFunc(slices.Values(ns), netip.Addr.Compare)
		if !slices.Equal(got, sorted) {
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

// await waits until the router's RIB matches want and returns the time of
// the latest RIB event, which must be after since: the arrival of what made
// it match, not the time the poll noticed. With a zero since it returns the
// time it saw the match.
func (r *router) await(ctx context.Context, want view, since time.Time) (time.Time, error) {
	var got view
	for {
		paths, err := r.paths(ctx)
		if err != nil {
			return time.Time{}, err
		}
		got = viewOf(paths)
		if got.matches(want) {
			// The watcher may run after the RIB changed: wait for its event.
			if since.IsZero() {
				return time.Now(), nil
			}
			if t := time.Unix(0, r.last.Load()); t.After(since) {
				return t, nil
			}
		}
		select {
		case <-r.changed:
			// Let a burst of updates land before listing the RIB again:
			// listing competes with the router's own processing, and the
			// result carries the event time, not the time of the check.
			time.Sleep(10 * time.Millisecond)
		case <-time.After(100 * time.Millisecond):
			// Hold-timer expiry drops paths without an adj-RIB-in event
			// per path; poll as a backstop.
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("router: RIB never matched %v; last seen %v: %w", want, got, ctx.Err())
		}
	}
}
