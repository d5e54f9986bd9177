package bgprouter

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	bgppkt "github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// Config describes a router: who it is, where it listens and which
// neighbors it accepts.
type Config struct {
	// AS and RouterID identify the router.
	AS       uint32
	RouterID netip.Addr
	// ListenPort and ListenAddrs are where it accepts sessions.
	ListenPort  int32
	ListenAddrs []string
	// Neighbors are the speakers it accepts.
	Neighbors []Neighbor
}

// Neighbor is one speaker as the router sees it. The router is passive: it
// waits for the neighbor to dial.
type Neighbor struct {
	Address netip.Addr
	AS      uint32
	// Password is the TCP MD5 signature key ("": none).
	Password string
	// HoldTime is the hold time the router proposes (0: gobgp's 90s); it
	// sends keepalives every third of it.
	HoldTime time.Duration
}

// Path is one path in the router's RIB, decoded for assertions.
type Path struct {
	Prefix   netip.Prefix
	Neighbor netip.Addr
	NextHop  netip.Addr
	// Communities are in text form: "ASN:VALUE" or the RFC 1997 name.
	Communities []string
	LocalPref   uint32 // 0: no LOCAL_PREF attribute
	ASPath      []uint32
}

// PeerView is the router's view of one neighbor.
type PeerView struct {
	Address netip.Addr
	// State is the lower-case FSM state name ("established", "active", ...).
	State       string
	UpdatesRecv uint64
}

// families are both unicast AFI-SAFIs, as raftvip configures its sessions.
var families = []*api.Family{
	{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST},
	{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST},
}

// Router is a running router.
type Router struct {
	s      *server.BgpServer
	cancel context.CancelFunc
	// last is the time (Unix ns) of the latest RIB-affecting event: an
	// update received or a session change; changed signals one.
	last    atomic.Int64
	changed chan struct{}
}

// Start starts a router with cfg in this process, logging through log (nil:
// gobgp's default logger). It watches its adj-RIB-in and session changes to
// timestamp arrivals for the benchmarks.
func Start(cfg Config, log gobgplog.Logger) (*Router, error) {
	r := &Router{
		s:       server.NewBgpServer(server.LoggerOption(log)),
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
		r.Stop()
		return nil, fmt.Errorf("router: watch: %w", err)
	}
	for _, n := range cfg.Neighbors {
		if err := r.s.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(n)}); err != nil {
			r.Stop()
			return nil, fmt.Errorf("router: add neighbor %s: %w", n.Address, err)
		}
	}
	return r, nil
}

// apiPeer is the gobgp configuration of a passive neighbor with both
// unicast families.
func apiPeer(n Neighbor) *api.Peer {
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
	return p
}

// notify records the time of an event and wakes a waiting Await.
func (r *Router) notify() {
	r.last.Store(time.Now().UnixNano())
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// Stop shuts the router down.
func (r *Router) Stop() {
	_ = r.s.StopBgp(context.Background(), &api.StopBgpRequest{})
	if r.cancel != nil {
		r.cancel()
	}
}

// Paths lists every path (best or not) of both unicast families, sorted by
// prefix and neighbor.
func (r *Router) Paths(ctx context.Context) ([]Path, error) {
	var out []Path
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
	slices.SortFunc(out, func(a, b Path) int {
		return cmp.Or(a.Prefix.Addr().Compare(b.Prefix.Addr()), a.Neighbor.Compare(b.Neighbor))
	})
	return out, nil
}

// decodePath turns one gobgp API path into a Path.
func decodePath(prefix string, p *api.Path) (Path, error) {
	var rp Path
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

// wellKnown names the RFC 1997 well-known communities, as raftvip's pool
// options spell them.
var wellKnown = map[uint32]string{
	0xffffff01: "no-export",
	0xffffff02: "no-advertise",
	0xffffff03: "no-export-subconfed",
}

// formatCommunity is the text of a community value: its RFC 1997 name, or
// "ASN:VALUE". The router decodes on its own rather than with raftvip's
// parser, so a test compares raftvip's output with an independent reading.
func formatCommunity(c uint32) string {
	if name, ok := wellKnown[c]; ok {
		return name
	}
	return strconv.FormatUint(uint64(c>>16), 10) + ":" + strconv.FormatUint(uint64(c&0xffff), 10)
}

// Peers lists the router's neighbors, sorted by address.
func (r *Router) Peers(ctx context.Context) ([]PeerView, error) {
	var out []PeerView
	err := r.s.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		a, _ := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		out = append(out, PeerView{
			Address:     a,
			State:       strings.ToLower(p.GetState().GetSessionState().String()),
			UpdatesRecv: p.GetState().GetMessages().GetReceived().GetUpdate(),
		})
	})
	slices.SortFunc(out, func(a, b PeerView) int { return a.Address.Compare(b.Address) })
	return out, err
}

// Await waits until the router's RIB matches want and returns the time of
// the latest RIB event, which must be after since: the arrival of what made
// it match, not the time the poll noticed. With a zero since it returns the
// time it saw the match.
func (r *Router) Await(ctx context.Context, want View, since time.Time) (time.Time, error) {
	var got View
	for {
		paths, err := r.Paths(ctx)
		if err != nil {
			return time.Time{}, err
		}
		got = ViewOf(paths)
		if got.Matches(want) {
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
