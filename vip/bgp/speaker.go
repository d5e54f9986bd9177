package bgp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// connectRetry is how often an unreachable peer is dialled again (gobgp
// waits a random time between one and two of these; its own default of 120s
// would leave a node unannounced for minutes after a router restart).
const connectRetry = 5 * time.Second

// Config is what a Speaker needs: the node's identity in BGP, its addresses
// (used as next hops) and the routers to peer with.
type Config struct {
	// AS is this node's AS number (--bgp-as).
	AS uint32
	// RouterID is the BGP identifier, an IPv4 address (--bgp-router-id);
	// unset means NextHop4.
	RouterID netip.Addr
	// ListenPort is the TCP port to accept sessions on; 0 and -1 mean do not
	// listen: the Speaker dials its peers.
	ListenPort int32
	// SourceAddress is the local address sessions are dialled from
	// (--bgp-source-address); it applies to peers of its own family.
	SourceAddress netip.Addr
	// NextHop4 is the next hop of IPv4 VIPs, the node's IPv4 address.
	NextHop4 netip.Addr
	// NextHop6 is the next hop of IPv6 VIPs, the node's IPv6 address.
	NextHop6 netip.Addr
	// Peers are the routers (--bgp-peer).
	Peers []Peer
	// Logger receives session changes and gobgp's own messages; nil means slog.Default().
	Logger *slog.Logger
}

// Speaker is one node's BGP speaker: an embedded gobgp server with the
// configured peers and the VIP paths the daemon asked for. Its methods are
// safe for concurrent use.
type Speaker struct {
	bgp     *server.BgpServer
	log     *slog.Logger
	nextHop map[bool]netip.Addr // keyed by Is4
	peers   []string
	stopW   context.CancelFunc

	upMu    sync.Mutex
	up      map[string]bool // peers whose session is established
	stopped bool            // no more metric updates from session events

	mu     sync.Mutex
	adv    map[netip.Addr]route
	closed bool
}

// Session is the state of the session with one peer, for status output.
type Session struct {
	// Peer is the peer's address.
	Peer string
	// State is the BGP FSM state in lower case: idle, connect, active,
	// opensent, openconfirm, established.
	State string
	// Uptime is how long the session has been established (0 when it is not).
	Uptime time.Duration
	// PrefixesSent is how many prefixes the peer has been sent (0 when down).
	PrefixesSent uint64
}

// errClosed is returned by calls on a closed Speaker.
var errClosed = errors.New("bgp: speaker is closed")

// New validates cfg, starts the gobgp server and adds the peers. Sessions
// come up in the background: an unreachable peer is retried and shown as
// down, it does not make New fail or wait.
func New(cfg Config) (*Speaker, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "bgp")
	s := &Speaker{
		bgp:     server.NewBgpServer(server.LoggerOption(slogAdapter{l: log})),
		log:     log,
		nextHop: map[bool]netip.Addr{true: cfg.NextHop4, false: cfg.NextHop6},
		adv:     map[netip.Addr]route{},
		up:      map[string]bool{},
	}
	go s.bgp.Serve()
	ctx := context.Background()
	err = s.bgp.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        cfg.AS,
		RouterId:   cfg.RouterID.String(),
		ListenPort: cfg.ListenPort,
	}})
	if err != nil {
		return nil, fmt.Errorf("bgp: start server (AS %d, router ID %s): %w", cfg.AS, cfg.RouterID, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	s.stopW = cancel
	if err := s.bgp.WatchEvent(wctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, s.peerEvent); err != nil {
		s.stop()
		return nil, fmt.Errorf("bgp: watch sessions: %w", err)
	}
	for _, p := range cfg.Peers {
		addr := p.Address.Unmap().String()
		sessionUp.WithLabelValues(addr).Set(0)
		s.peers = append(s.peers, addr)
		if err := s.bgp.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p, cfg.SourceAddress)}); err != nil {
			s.stop()
			return nil, fmt.Errorf("bgp: add peer %s (AS %d): %w", addr, p.AS, err)
		}
	}
	log.Info("bgp speaker started", "as", cfg.AS, "router_id", cfg.RouterID, "peers", strings.Join(s.peers, " "),
		"next_hop4", cfg.NextHop4, "next_hop6", cfg.NextHop6)
	return s, nil
}

// validate checks cfg and fills in defaults; errors name the field and value.
func (c Config) validate() (Config, error) {
	if c.AS == 0 {
		return c, errors.New("bgp: AS 0 is reserved: set the local AS (1..4294967295)")
	}
	c.NextHop4, c.NextHop6 = c.NextHop4.Unmap(), c.NextHop6.Unmap()
	if c.NextHop4.IsValid() && !c.NextHop4.Is4() {
		return c, fmt.Errorf("bgp: IPv4 next hop %s is not an IPv4 address", c.NextHop4)
	}
	if c.NextHop6.IsValid() && !c.NextHop6.Is6() {
		return c, fmt.Errorf("bgp: IPv6 next hop %s is not an IPv6 address", c.NextHop6)
	}
	if !c.NextHop4.IsValid() && !c.NextHop6.IsValid() {
		return c, errors.New("bgp: no next hop: the node needs an IPv4 or IPv6 address")
	}
	if !c.RouterID.IsValid() {
		c.RouterID = c.NextHop4
	}
	if c.RouterID = c.RouterID.Unmap(); !c.RouterID.Is4() || c.RouterID.IsUnspecified() {
		return c, fmt.Errorf("bgp: router ID %q must be a non-zero IPv4 address: set it explicitly on IPv6-only nodes", c.RouterID)
	}
	switch {
	case c.ListenPort == 0 || c.ListenPort == -1:
		c.ListenPort = -1
	case c.ListenPort < 1 || c.ListenPort > math.MaxUint16:
		return c, fmt.Errorf("bgp: listen port %d out of range: want 1..65535, or -1 not to listen", c.ListenPort)
	}
	c.SourceAddress = c.SourceAddress.Unmap()
	if len(c.Peers) == 0 {
		return c, errors.New("bgp: no peers configured")
	}
	seen := map[netip.Addr]bool{}
	for _, p := range c.Peers {
		switch {
		case !p.Address.IsValid():
			return c, errors.New("bgp: peer without an address")
		case p.AS == 0:
			return c, fmt.Errorf("bgp: peer %s: AS 0 is reserved", p.Address)
		case seen[p.Address.Unmap()]:
			return c, fmt.Errorf("bgp: peer %s configured twice", p.Address)
		}
		if p.HoldTime != 0 {
			if err := checkHoldTime(p.HoldTime); err != nil {
				return c, fmt.Errorf("bgp: peer %s: hold time %v: %w", p.Address, p.HoldTime, err)
			}
		}
		seen[p.Address.Unmap()] = true
	}
	return c, nil
}

// apiPeer is the gobgp configuration of one peer: both unicast families,
// our connect-retry interval, and the options the user gave.
func apiPeer(p Peer, source netip.Addr) *api.Peer {
	addr := p.Address.Unmap()
	ap := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: addr.String(), PeerAsn: p.AS, AuthPassword: p.Password},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: uint64(connectRetry / time.Second)}},
	}
	if source.IsValid() && source.Is4() == addr.Is4() {
		ap.Transport.LocalAddress = source.String()
	}
	if p.HoldTime > 0 {
		hold := uint64(p.HoldTime / time.Second)
		ap.Timers.Config.HoldTime = hold
		ap.Timers.Config.KeepaliveInterval = max(hold/3, 1)
	}
	if p.Multihop > 0 {
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.Multihop)}
	}
	for _, f := range families {
		ap.AfiSafis = append(ap.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{Family: f, Enabled: true}})
	}
	return ap
}

// peerEvent follows session state changes into the metrics and the log.
func (s *Speaker) peerEvent(r *api.WatchEventResponse) {
	ev := r.GetPeer()
	if ev == nil || ev.Type != api.WatchEventResponse_PeerEvent_STATE || ev.Peer.GetState() == nil {
		return
	}
	st := ev.Peer.State
	addr := st.NeighborAddress
	established := st.SessionState == api.PeerState_ESTABLISHED
	s.upMu.Lock()
	defer s.upMu.Unlock()
	if s.stopped || s.up[addr] == established {
		return
	}
	s.up[addr] = established
	if established {
		sessionUp.WithLabelValues(addr).Set(1)
		sessionTransitions.WithLabelValues(addr, "established").Inc()
		s.log.Info("bgp session established", "peer", addr, "peer_as", st.PeerAsn)
		return
	}
	sessionUp.WithLabelValues(addr).Set(0)
	sessionTransitions.WithLabelValues(addr, "down").Inc()
	s.log.Warn("bgp session down", "peer", addr, "state", stateName(st.SessionState))
}

// stateName is the lower-case FSM state name ("established", "active", ...).
func stateName(st api.PeerState_SessionState) string {
	return strings.ToLower(st.String())
}

// nextHopFor returns the configured next hop of vip's family.
func (s *Speaker) nextHopFor(vip netip.Addr) (netip.Addr, error) {
	nh := s.nextHop[vip.Is4()]
	if !nh.IsValid() {
		return nh, fmt.Errorf("bgp: VIP %s: the node has no %s address to use as next hop", vip, familyName(vip))
	}
	return nh, nil
}

// Set makes the advertised VIPs equal want: it withdraws the VIPs not in
// want, advertises the new ones and re-advertises those whose attributes
// changed. Unchanged VIPs cost nothing, so calling it on every reconcile is
// cheap. want is checked whole before anything changes; a failure part way
// leaves the Speaker's record matching what gobgp holds, and the next Set
// retries the rest.
func (s *Speaker) Set(ctx context.Context, want map[netip.Addr]PathAttrs) error {
	norm := make(map[netip.Addr]route, len(want))
	for a, attrs := range want {
		vip, err := normalizeVIP(a)
		if err != nil {
			return fmt.Errorf("bgp: %w", err)
		}
		if _, dup := norm[vip]; dup {
			return fmt.Errorf("bgp: VIP %s given twice (also as %s)", vip, a)
		}
		if _, err := s.nextHopFor(vip); err != nil {
			return err
		}
		r, err := newRoute(attrs)
		if err != nil {
			return fmt.Errorf("bgp: VIP %s: %w", vip, err)
		}
		norm[vip] = r
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	defer s.updateGauge()
	for _, vip := range sortedVIPs(s.adv) {
		if _, keep := norm[vip]; keep {
			continue
		}
		if err := s.withdraw(ctx, vip); err != nil {
			return err
		}
	}
	for _, vip := range sortedVIPs(norm) {
		if old, ok := s.adv[vip]; ok && old.equal(norm[vip]) {
			continue
		}
		if err := s.announce(ctx, vip, norm[vip]); err != nil {
			return err
		}
	}
	return nil
}

// announce adds or replaces the path of vip. Called with mu held.
func (s *Speaker) announce(ctx context.Context, vip netip.Addr, r route) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bgp: advertise %s: %w", vip, err)
	}
	nh, err := s.nextHopFor(vip)
	if err != nil {
		return err
	}
	p, err := buildPath(vip, nh, r, false)
	if err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	if _, err := s.bgp.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p}); err != nil {
		return fmt.Errorf("bgp: advertise %s: %w", vip, err)
	}
	_, existed := s.adv[vip]
	s.adv[vip] = r
	s.log.Debug("bgp path advertised", "vip", vip, "next_hop", nh, "update", existed)
	return nil
}

// withdraw removes the path of vip. Called with mu held.
func (s *Speaker) withdraw(ctx context.Context, vip netip.Addr) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bgp: withdraw %s: %w", vip, err)
	}
	p, err := buildPath(vip, s.nextHop[vip.Is4()], s.adv[vip], true)
	if err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	if err := s.bgp.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: p.Family, Path: p}); err != nil {
		return fmt.Errorf("bgp: withdraw %s: %w", vip, err)
	}
	delete(s.adv, vip)
	s.log.Debug("bgp path withdrawn", "vip", vip)
	return nil
}

// WithdrawAll withdraws every path this Speaker advertises (fence timeout);
// the sessions stay up so a later Set is announced at once.
func (s *Speaker) WithdrawAll(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	return s.withdrawAll(ctx)
}

// withdrawAll deletes every locally originated path, whatever the record
// says. Called with mu held.
func (s *Speaker) withdrawAll(ctx context.Context) error {
	defer s.updateGauge()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bgp: withdraw all: %w", err)
	}
	if err := s.bgp.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL}); err != nil {
		return fmt.Errorf("bgp: withdraw all: %w", err)
	}
	if n := len(s.adv); n > 0 {
		s.log.Info("bgp paths withdrawn", "count", n)
	}
	clear(s.adv)
	return nil
}

// updateGauge publishes the advertised count per family. Called with mu held.
func (s *Speaker) updateGauge() {
	n := map[string]int{"ipv4": 0, "ipv6": 0}
	for vip := range s.adv {
		n[familyName(vip)]++
	}
	for fam, c := range n {
		advertised.WithLabelValues(fam).Set(float64(c))
	}
}

// Sessions reports the state of every configured peer, sorted by address.
func (s *Speaker) Sessions(ctx context.Context) ([]Session, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	var out []Session
	err := s.bgp.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		out = append(out, sessionOf(p))
	})
	if err != nil {
		return nil, fmt.Errorf("bgp: list peers: %w", err)
	}
	slices.SortFunc(out, func(a, b Session) int { return cmp.Compare(a.Peer, b.Peer) })
	return out, nil
}

// sessionOf summarizes one gobgp peer.
func sessionOf(p *api.Peer) Session {
	st := p.GetState()
	ses := Session{Peer: p.GetConf().GetNeighborAddress(), State: stateName(st.GetSessionState())}
	if st.GetSessionState() != api.PeerState_ESTABLISHED {
		return ses
	}
	if up := p.GetTimers().GetState().GetUptime(); up != nil {
		ses.Uptime = time.Since(up.AsTime())
	}
	for _, af := range p.GetAfiSafis() {
		ses.PrefixesSent += af.GetState().GetAdvertised()
	}
	return ses
}

// Close withdraws every path, then ends the sessions with a Cease
// NOTIFICATION and stops the server, so peers drop this node's paths at once.
// If ctx ends first Close returns its error and the stop finishes in the
// background. Closing twice is a no-op. (gobgp's event loop goroutine has no
// exit; it idles until the process ends.)
func (s *Speaker) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	werr := s.withdrawAll(ctx)
	done := make(chan struct{})
	go func() {
		s.stop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return errors.Join(werr, fmt.Errorf("bgp: stop: %w", ctx.Err()))
	}
	s.log.Info("bgp speaker stopped")
	return werr
}

// stop ends the sessions and the listeners, and forgets the peers' metrics.
func (s *Speaker) stop() {
	_ = s.bgp.StopBgp(context.Background(), &api.StopBgpRequest{})
	if s.stopW != nil {
		s.stopW()
	}
	s.upMu.Lock()
	defer s.upMu.Unlock()
	s.stopped = true
	for _, p := range s.peers {
		sessionUp.DeleteLabelValues(p)
	}
}

// sortedVIPs returns the keys of m in address order, so that work is done in
// the same order every time.
func sortedVIPs[V any](m map[netip.Addr]V) []netip.Addr {
	return slices.SortedFunc(maps.Keys(m), netip.Addr.Compare)
}
