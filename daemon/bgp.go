package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftvip/raftvip/daemon/assign"
	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/vip"
	"github.com/raftvip/raftvip/vip/bgp"
)

// BGP mode in two halves, joined only by the replicated state:
//   - the leader decides, per VIP, which nodes advertise it (advertiserSets) and
//     commits the changed sets (SetAdvertisers);
//   - every node advertises exactly the VIPs whose committed set names it, while it
//     hears from a leader (bgpLoop), and accepts their traffic by holding them on lo.

// loopback is where bgp mode puts the VIPs a node advertises, so the kernel accepts
// their traffic. Never the segment interface: every advertiser holds the VIP at
// once, and on a shared segment they would all answer ARP for it.
const loopback = "lo"

// bgpResync is how often the node re-applies its advertised set even when nothing
// changed, so a VIP someone removed from lo comes back.
const bgpResync = 10 * time.Second

// bgpCloseBudget bounds the withdraw-and-Cease at shutdown.
const bgpCloseBudget = 2 * time.Second

// advertiserChange is one VIP whose advertiser set the leader changed: what the log
// line and the Services' Events say.
type advertiserChange struct {
	VIP      netip.Addr
	Services []string // Services allocated the VIP, sorted; none for a control-plane VIP
	From, To []string // sorted node names; empty: nobody
}

// advertiserInput is everything the leader's BGP decision reads.
type advertiserInput struct {
	ControlPlaneVIPs []netip.Addr
	Voters           []string
	// Nodes is nodeHealth's answer: every Raft server, healthy when it answered the
	// leader within the node-down timeout and is not draining.
	Nodes []assign.Node
	State raftstore.State
	// Endpoints is the Kubernetes view; nil without one, when every allocated
	// Service counts as Cluster with endpoints.
	Endpoints map[string]endpointInfo
	// ServicesKnown is false while the Kubernetes caches sync: a missing endpoint
	// means "not seen yet", so service VIPs keep the advertisers they have.
	ServicesKnown bool
}

// advertiserSets decides, as a pure function of its input, which nodes advertise
// each VIP (absent: nobody):
//   - a control-plane VIP: every live voter whose local API server is healthy, so a
//     node whose API server died withdraws even though its agent runs. Before any
//     API server has ever been healthy (bootstrap), and when none is healthy now,
//     every live voter advertises: withdrawing everywhere would help no client.
//   - a service VIP: the nodes eligible for its Service (assign.Eligible: healthy,
//     not excluded, and for externalTrafficPolicy Local holding a usable endpoint).
//     Services sharing a VIP get the nodes eligible for all of them, so traffic to
//     either port lands where it is served; when no node is, the union.
func advertiserSets(in advertiserInput) map[netip.Addr][]string {
	out := map[netip.Addr][]string{}
	cp := map[netip.Addr]bool{}
	if nodes := controlPlaneAdvertisers(in); len(nodes) > 0 {
		for _, v := range in.ControlPlaneVIPs {
			out[v] = nodes
		}
	}
	for _, v := range in.ControlPlaneVIPs {
		cp[v] = true
	}
	if !in.ServicesKnown {
		for key, nodes := range in.State.Advertisers {
			if v, err := netip.ParseAddr(key); err == nil && !cp[v] && len(nodes) > 0 {
				out[v] = slices.Clone(nodes)
			}
		}
		return out
	}
	svcs, _ := assignInputs(in.State, in.Endpoints)
	perVIP := map[netip.Addr][][]string{}
	for _, s := range svcs {
		elig := assign.Eligible(s, in.Nodes)
		for _, v := range s.VIPs {
			perVIP[v] = append(perVIP[v], elig)
		}
	}
	for v, sets := range perVIP {
		if cp[v] {
			continue
		}
		if nodes := sharedAdvertisers(sets); len(nodes) > 0 {
			out[v] = nodes
		}
	}
	return out
}

// controlPlaneAdvertisers applies the control-plane rule of advertiserSets.
func controlPlaneAdvertisers(in advertiserInput) []string {
	healthy := map[string]bool{}
	for _, n := range in.Nodes {
		healthy[n.Name] = n.Healthy
	}
	var live, serving []string
	for _, v := range slices.Sorted(slices.Values(in.Voters)) {
		if !healthy[v] || slices.Contains(live, v) {
			continue
		}
		live = append(live, v)
		if in.State.Nodes[v].APIServerHealthy {
			serving = append(serving, v)
		}
	}
	if !in.State.APIServerEverHealthy || len(serving) == 0 {
		return live
	}
	return serving
}

// sharedAdvertisers is the intersection of the non-empty eligible sets of the
// Services sharing one VIP, or their union when they have no node in common.
func sharedAdvertisers(sets [][]string) []string {
	var common, union []string
	first := true
	for _, s := range sets {
		if len(s) == 0 {
			continue
		}
		union = append(union, s...)
		if first {
			common, first = slices.Clone(s), false
			continue
		}
		common = slices.DeleteFunc(common, func(n string) bool { return !slices.Contains(s, n) })
	}
	if len(common) == 0 {
		common = union
	}
	slices.Sort(common)
	return slices.Compact(common)
}

// advertiserChanges compares the decision with the committed sets and returns the
// VIPs that differ, sorted by address, with the Services each belongs to.
func advertiserChanges(st raftstore.State, want map[netip.Addr][]string) []advertiserChange {
	cur := map[netip.Addr][]string{}
	for key, nodes := range st.Advertisers {
		if v, err := netip.ParseAddr(key); err == nil {
			cur[v] = nodes
		}
	}
	owners := map[netip.Addr][]string{}
	for key, a := range st.Allocations {
		for _, ip := range a.IPs {
			if v, err := netip.ParseAddr(ip); err == nil {
				owners[v] = append(owners[v], key)
			}
		}
	}
	var out []advertiserChange
	for _, v := range slices.SortedFunc(maps.Keys(union(cur, want)), netip.Addr.Compare) {
		if slices.Equal(cur[v], want[v]) {
			continue
		}
		out = append(out, advertiserChange{VIP: v, Services: slices.Sorted(slices.Values(owners[v])),
			From: slices.Clone(cur[v]), To: slices.Clone(want[v])})
	}
	return out
}

// union is the set of keys of two maps.
func union[V any](a, b map[netip.Addr]V) map[netip.Addr]bool {
	out := make(map[netip.Addr]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// advertiserCommands turns changes into one Raft batch.
func advertiserCommands(changes []advertiserChange) raftstore.Batch {
	var b raftstore.Batch
	for _, c := range changes {
		b.Commands = append(b.Commands, raftstore.SetAdvertisers{VIP: c.VIP.String(), Nodes: c.To})
	}
	return b
}

// bgpWant is what this node advertises: every VIP whose committed advertiser set
// names it, with its pool's path attributes, unless it is fenced (cut off from any
// leader for the fence timeout; the leader itself never is). VIPs of a family it has
// no next hop for come back apart, sorted, for the caller to report.
func bgpWant(self string, isFenced bool, st raftstore.State, s bgpSettings) (map[netip.Addr]bgp.PathAttrs, []netip.Addr) {
	want := map[netip.Addr]bgp.PathAttrs{}
	if isFenced {
		return want, nil
	}
	pools := map[netip.Addr]string{}
	for _, a := range st.Allocations {
		for _, ip := range a.IPs {
			if v, err := netip.ParseAddr(ip); err == nil {
				pools[v] = a.Pool
			}
		}
	}
	var unroutable []netip.Addr
	for key, nodes := range st.Advertisers {
		v, err := netip.ParseAddr(key)
		if err != nil || !slices.Contains(nodes, self) {
			continue
		}
		if !s.canAdvertise(v) {
			unroutable = append(unroutable, v)
			continue
		}
		want[v] = s.PoolAttrs[pools[v]]
	}
	slices.SortFunc(unroutable, netip.Addr.Compare)
	return want, unroutable
}

// sameRoutes reports whether two advertised sets are equal, attributes included.
func sameRoutes(a, b map[netip.Addr]bgp.PathAttrs) bool {
	return maps.EqualFunc(a, b, func(x, y bgp.PathAttrs) bool {
		return x.LocalPref == y.LocalPref && slices.Equal(x.Communities, y.Communities)
	})
}

// bgpAdvertiser is this node's BGP side: the speaker and the VIPs held on lo.
type bgpAdvertiser struct {
	sp      *bgp.Speaker
	log     *slog.Logger
	changes *prometheus.CounterVec

	mu     sync.Mutex
	held   map[netip.Addr]bool // on lo, possibly advertised
	closed bool
}

// newBGPAdvertiser removes VIPs an earlier run left on lo (and, after a switch from
// l2 mode, on the segment interface), then starts the speaker. Sessions come up in
// the background; an unreachable router never fails or delays this.
func newBGPAdvertiser(p *Parsed, log *slog.Logger) (*bgpAdvertiser, error) {
	for _, iface := range []string{loopback, p.Interface} {
		if iface == "" {
			continue
		}
		stale, err := vip.ListVIPAddresses(iface)
		if err != nil {
			return nil, fmt.Errorf("bgp mode: %w", err)
		}
		for _, v := range stale {
			if err := vip.RemoveAddress(iface, v); err != nil {
				return nil, fmt.Errorf("bgp mode: remove stale VIP: %w", err)
			}
		}
		if len(stale) > 0 {
			log.Warn("removed VIPs left by an earlier run", "interface", iface, "vips", stale)
		}
	}
	v4 := slices.ContainsFunc(p.VIPs, netip.Addr.Is4)
	for _, pool := range p.Pools {
		for _, r := range pool.Ranges {
			v4 = v4 || r.First.Is4()
			if !p.BGP.canAdvertise(r.First) {
				log.Warn("pool has addresses of a family this node has no next hop for: they will not be advertised from here (give --bgp-next-hop-ipv6)",
					"pool", pool.Name, "range", r.String())
			}
		}
	}
	if exposed, err := arpExposed("/proc", p.Interface); err != nil {
		log.Debug("cannot read arp_ignore", "err", err)
	} else if exposed && v4 {
		log.Warn("the kernel answers ARP on every interface for the VIPs bgp mode puts on lo (arp_ignore=0): keep BGP VIPs outside the node subnets, or set net.ipv4.conf.all.arp_ignore=1 and arp_announce=2 (docs/bgp.md)")
	}
	cfg := p.BGP.speakerConfig()
	cfg.Logger = log
	sp, err := bgp.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("bgp mode: %w", err)
	}
	return &bgpAdvertiser{
		sp:  sp,
		log: log.With("component", "bgp"),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raftvip_bgp_advertiser_changes_total",
			Help: "Per-VIP advertiser set changes committed by this node as leader, by VIP kind (control-plane or service).",
		}, []string{"kind"}),
		held: map[netip.Addr]bool{},
	}, nil
}

// arpExposed reports whether Linux answers ARP requests arriving on the segment for
// addresses held on lo: it does when the effective arp_ignore (the larger of the
// "all" and the interface's value) is 0, the default. Every advertiser holds each
// VIP on lo, so a host on the node subnet asking for a VIP in that subnet would get
// an answer from every one of them. procRoot is normally /proc.
func arpExposed(procRoot, iface string) (bool, error) {
	read := func(dev string) (int, error) {
		b, err := os.ReadFile(filepath.Join(procRoot, "sys/net/ipv4/conf", dev, "arp_ignore"))
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(strings.TrimSpace(string(b)))
	}
	v, err := read("all")
	if err != nil {
		return false, err
	}
	if iface != "" {
		if w, err := read(iface); err == nil {
			v = max(v, w)
		}
	}
	return v == 0, nil
}

// apply makes lo and the speaker match want. Order matters for traffic in flight:
// a VIP is on lo before any router is told to send it here, and is withdrawn before
// it leaves lo. A VIP that cannot be put on lo is not advertised.
func (b *bgpAdvertiser) apply(ctx context.Context, want map[netip.Addr]bgp.PathAttrs) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("bgp: advertiser is closed")
	}
	var errs []error
	adv := make(map[netip.Addr]bgp.PathAttrs, len(want))
	for _, v := range slices.SortedFunc(maps.Keys(want), netip.Addr.Compare) {
		if err := vip.AddAddress(loopback, v); err != nil {
			errs = append(errs, err)
			continue
		}
		b.held[v] = true
		adv[v] = want[v]
	}
	if err := b.sp.Set(ctx, adv); err != nil {
		// Unknown what was withdrawn: keep every address until a Set succeeds.
		return errors.Join(append(errs, err)...)
	}
	for _, v := range slices.SortedFunc(maps.Keys(b.held), netip.Addr.Compare) {
		if _, keep := adv[v]; keep {
			continue
		}
		if err := vip.RemoveAddress(loopback, v); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(b.held, v)
	}
	return errors.Join(errs...)
}

// heldVIPs lists the VIPs on lo, sorted, for /raft/status.
func (b *bgpAdvertiser) heldVIPs() []netip.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.SortedFunc(maps.Keys(b.held), netip.Addr.Compare)
}

// sessions reports the BGP sessions for /raft/status.
func (b *bgpAdvertiser) sessions(ctx context.Context) []BGPSession {
	ss, err := b.sp.Sessions(ctx)
	if err != nil {
		b.log.Debug("list BGP sessions", "err", err)
		return nil
	}
	out := make([]BGPSession, 0, len(ss))
	for _, s := range ss {
		out = append(out, BGPSession{Peer: s.Peer, State: s.State,
			UptimeSeconds: int64(s.Uptime / time.Second), PrefixesSent: s.PrefixesSent})
	}
	return out
}

// close withdraws every path and ends the sessions with a Cease, so routers drop
// this node at once rather than after the hold time, then takes the VIPs off lo.
// Closing twice is a no-op.
func (b *bgpAdvertiser) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), bgpCloseBudget)
	defer cancel()
	if err := b.sp.Close(ctx); err != nil {
		b.log.Warn("withdraw BGP paths on shutdown", "err", err)
	}
	for v := range b.held {
		if err := vip.RemoveAddress(loopback, v); err != nil {
			b.log.Warn("remove VIP from lo on shutdown", "vip", v, "err", err)
		}
	}
	clear(b.held)
}

// bgpLoop advertises what the replicated state says this node advertises, on every
// FSM or leadership change and often enough to notice the fence timeout passing.
// When ctx ends it withdraws everything and closes the speaker.
func (d *Daemon) bgpLoop(ctx context.Context) {
	b := d.bgp
	defer b.close()
	changes := d.node.LeadershipChanges()
	check := time.NewTicker(max(d.cfg.FenceTimeout/6, 10*time.Millisecond))
	defer check.Stop()
	var applied map[netip.Addr]bgp.PathAttrs
	var lastSync time.Time
	var lastUnroutable []netip.Addr
	synced, failing, wasFenced := false, false, true
	// As in announceLoop: copy the state only when it changed, not on every tick.
	changed := d.node.Changed()
	st := d.node.State()
	// As in announceLoop: a node that (re)gains contact advertises nothing until
	// its copy of the state holds what the leader had committed.
	var cu catchUp
	wasLeader := false
	for {
		d.health.beat("announce", time.Now())
		leader := d.node.IsLeader()
		isFenced := !leader && fenced(d.node.LastContact(), d.cfg.FenceTimeout, time.Now())
		if isFenced || (leader && !wasLeader) {
			cu = catchUp{}
		}
		current := !isFenced && cu.current(d.node, st.AppliedIndex)
		halted := d.node.Halted() != nil
		want, unroutable := bgpWant(d.cfg.NodeName, isFenced || !current || halted, st, d.cfg.BGP)
		if !slices.Equal(unroutable, lastUnroutable) && len(unroutable) > 0 {
			d.log.Warn("not advertising VIPs of a family this node has no next hop for (give --bgp-next-hop-ipv6)", "vips", unroutable)
		}
		lastUnroutable = unroutable
		// Ask again right before the speaker hears of it: the copy may be older
		// than the latest applied state, and the fence may have passed since.
		want = bgpStillEntitled(want, !d.node.IsLeader() && fenced(d.node.LastContact(), d.cfg.FenceTimeout, time.Now()),
			func(v netip.Addr) bool { return d.node.Advertises(v.String(), d.cfg.NodeName) })
		if !synced || !sameRoutes(want, applied) || time.Since(lastSync) > bgpResync {
			err := b.apply(ctx, want)
			switch {
			case err != nil && !failing:
				d.log.Error("advertise what the replicated state says", "err", err)
			case err != nil:
				d.log.Debug("advertise what the replicated state says: still failing", "err", err)
			case !synced || !sameRoutes(want, applied):
				d.logAdvertised(want, isFenced, wasFenced)
			}
			failing, synced = err != nil, err == nil
			if synced {
				applied, lastSync = want, time.Now()
			}
		}
		wasFenced, wasLeader = isFenced, leader
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case <-changed:
			changed = d.node.Changed()
			st = d.node.State()
		case <-check.C:
		case r := <-cu.pending:
			if err := cu.settle(r); err != nil {
				d.log.Debug("read index before advertising", "err", err)
			}
		}
	}
}

// logAdvertised says what changed in the advertised set, and why when the node
// was cut off from its leader.
func (d *Daemon) logAdvertised(want map[netip.Addr]bgp.PathAttrs, isFenced, wasFenced bool) {
	vips := slices.SortedFunc(maps.Keys(want), netip.Addr.Compare)
	if isFenced && !wasFenced {
		d.log.Warn("no word from a leader within the fence timeout: withdrew all BGP paths", "fence_timeout", d.cfg.FenceTimeout)
		return
	}
	d.log.Info("BGP paths advertised here changed", "advertised", vips)
}

// decideAdvertisers (leader only, bgp mode) decides who advertises each VIP and
// commits the changed sets in one batch.
func (d *Daemon) decideAdvertisers(st raftstore.State, servers []raftstore.Server, contacts map[string]time.Time, leaderSince time.Time) {
	in := advertiserInput{ControlPlaneVIPs: d.cfg.VIPs, State: st, ServicesKnown: true}
	var excluded []string
	if d.services != nil {
		if d.services.Ready() {
			in.Endpoints, excluded = d.services.Endpoints(), d.services.ExcludedNodes()
		} else {
			in.ServicesKnown = false
		}
	}
	in.Nodes = nodeHealth(d.cfg.NodeName, servers, contacts, leaderSince, time.Now(), d.cfg.NodeDownTimeout, st, excluded)
	for _, s := range servers {
		if s.Suffrage == raftstore.SuffrageVoter {
			in.Voters = append(in.Voters, s.ID)
		}
	}
	changes := advertiserChanges(st, advertiserSets(in))
	if len(changes) == 0 {
		return
	}
	if err := d.node.Apply(advertiserCommands(changes), reportTimeout); err != nil {
		d.log.Error("commit BGP advertisers", "changes", len(changes), "err", err)
		return
	}
	for _, c := range changes {
		kind := "service"
		if slices.Contains(d.cfg.VIPs, c.VIP) {
			kind = "control-plane"
		}
		d.bgp.changes.WithLabelValues(kind).Inc()
		d.log.Info("BGP advertisers changed", "vip", c.VIP, "kind", kind, "services", c.Services, "from", c.From, "to", c.To)
	}
	if d.services != nil {
		d.services.AdvertisersChanged(changes)
	}
}
