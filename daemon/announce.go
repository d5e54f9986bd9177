package daemon

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/vip"
)

// desiredVIPs is what this node must hold on its interface right now, from the
// replicated state alone:
//   - the control-plane VIPs while it is the Raft leader;
//   - the service VIPs the FSM says it owns and does not ask it to release,
//     unless fenced: the caller fences a follower that has not heard from a
//     leader within the fence timeout, and any node whose FSM has not caught up
//     with the leader's commit index.
//
// A node cut off from the leader therefore goes silent after the fence timeout,
// before the leader's (longer) node-down timeout lets anyone else take its VIPs.
func desiredVIPs(self string, leader, fenced bool, cpVIPs []netip.Addr, st raftstore.State) []netip.Addr {
	var out []netip.Addr
	if leader {
		out = append(out, cpVIPs...)
	}
	if !fenced {
		for vip, o := range st.Owners {
			// A releasing VIP is still recorded as ours, but a planned move is
			// waiting for us to let go of it (release.go).
			if o.Node != self || o.Releasing {
				continue
			}
			if a, err := netip.ParseAddr(vip); err == nil {
				out = append(out, a)
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}

// unlessHalted is what a node may hold when its state machine may have halted
// (raftstore/halt.go): nothing at all, not even the control-plane VIPs, since
// its state is behind the cluster's for good.
func unlessHalted(want []netip.Addr, halt *raftstore.Halt) []netip.Addr {
	if halt != nil {
		return nil
	}
	return want
}

// leasesFor gives each VIP its kernel lease (vip.Fence), ending at now plus:
// for control-plane VIPs cpTTL, what is left at now of the verified leader
// lease, which ends before any follower may start an election; for service VIPs
// svcTTL, which ends before the leader's node-down timeout lets another node
// take them. now is the moment the pass decided, so the leases end when the
// decision's entitlement does, however late they reach the kernel.
func leasesFor(want, cpVIPs []netip.Addr, now time.Time, cpTTL, svcTTL time.Duration) []vip.Lease {
	out := make([]vip.Lease, len(want))
	for i, a := range want {
		ttl := svcTTL
		if slices.Contains(cpVIPs, a) {
			ttl = min(cpTTL, svcTTL)
		}
		out[i] = vip.Lease{VIP: a, Until: now.Add(ttl)}
	}
	return out
}

// passState is what one pass of the announce loop decides from the clock and
// Raft: whether the node speaks as leader, whether its service VIPs are fenced,
// and the leases the kernel gets.
type passState struct {
	leader, fenced bool
	cpTTL, svcTTL  time.Duration
}

// decidePass is the pure core of a pass. A Raft leader speaks only within its
// verified lease and fences its service VIPs when even the fence timeout has
// passed since the last verification; a follower fences when it has not heard
// from a leader within the fence timeout. Either is fenced when the loop itself
// did not run for longer than half the fence timeout (a frozen process): what it
// knew before may be stale.
func decidePass(raftLeader bool, verifiedAt, lastContact, lastPass, now time.Time, leaderLease, fence time.Duration) passState {
	stalled := !lastPass.IsZero() && now.Sub(lastPass) > fence/2
	if raftLeader {
		cp := leaseLeft(verifiedAt, now, leaderLease)
		svc := leaseLeft(verifiedAt, now, fence)
		return passState{leader: cp > 0 && !stalled, fenced: svc <= 0 || stalled, cpTTL: cp, svcTTL: svc}
	}
	return passState{fenced: stalled || fenced(lastContact, fence, now), svcTTL: fence}
}

// announceCheckInterval is how often the announce loop re-checks the fence
// and renews the kernel leases: several times within the shortest lease, so
// one late pass does not let a lease lapse.
func announceCheckInterval(cfg *Parsed) time.Duration {
	return max(min(cfg.FenceTimeout/6, cfg.Raft.LeaderLease/4), 5*time.Millisecond)
}

// fenced reports whether a follower has gone too long without a leader.
func fenced(lastContact time.Time, fence time.Duration, now time.Time) bool {
	return lastContact.IsZero() || now.Sub(lastContact) > fence
}

// holderlessLoop is the announce loop of a node with no interface to announce
// on (no --interface, no pool interface=): it holds nothing, but it still
// confirms at once any release the leader asks of it (a VIP it owned under
// earlier flags), so the leader need not wait out the fence, and it still
// passes, so /healthz does not call it stuck and the kubelet does not restart
// a healthy quorum member.
func (d *Daemon) holderlessLoop(ctx context.Context) {
	var acks acker
	// The state is copied only when it changed; the ticks only retry acks.
	changed := d.node.Changed()
	st := d.node.State()
	tick := time.NewTicker(ackRetry)
	defer tick.Stop()
	for {
		now := time.Now()
		d.health.beat("announce", now)
		d.confirmReleases(&acks, st, nil, now)
		select {
		case <-ctx.Done():
			return
		case <-changed:
			changed = d.node.Changed()
			st = d.node.State()
		case <-tick.C:
		}
	}
}

// announceLoop makes the interface match desiredVIPs, on every leadership change,
// every FSM change, and often enough to notice the fence timeout passing.
func (d *Daemon) announceLoop(ctx context.Context) {
	if len(d.holders) == 0 {
		d.holderlessLoop(ctx)
		return
	}
	for _, h := range d.holders {
		h.SetEntitled(d.entitled)
	}
	var lastHomeless string
	changes := d.node.LeadershipChanges()
	check := time.NewTicker(announceCheckInterval(d.cfg))
	defer check.Stop()
	wasLeader, wasFenced := false, true
	// Service VIPs wait until the FSM is known to be current: after start, on
	// becoming leader and after every fence. Heartbeats carry no log entries, so a
	// node that hears from the leader again may not yet have applied the entries
	// that moved its VIPs away; announcing from that state makes two speakers.
	var cu catchUp
	// The state is copied only when it changed: the ticker that watches the fence
	// fires several times per fence timeout, and the copy grows with the Services.
	changed := d.node.Changed()
	st := d.node.State()
	var lastPass time.Time
	wasRaftLeader := false
	var acks acker
	var epochs map[netip.Addr]uint64
	for {
		now := time.Now()
		d.health.beat("announce", now)
		raftLeader := d.node.IsLeader()
		if raftLeader && !wasRaftLeader {
			d.lease.poke()
		}
		wasRaftLeader = raftLeader
		// A leader whose term's barrier has not committed yet acts as a follower
		// that hears its leader: it speaks for the control-plane VIPs only once ready.
		p := d.lease.apply(decidePass(raftLeader && d.node.LeaderReady(), d.lease.verifiedAt(), d.node.LastContact(), lastPass, now, d.cfg.Raft.LeaderLease, d.cfg.FenceTimeout))
		lastPass = now
		leader, isFenced := p.leader, p.fenced
		// A leader stepping down was current; a new leader may not have applied
		// what its predecessor committed.
		if isFenced || (leader && !wasLeader) {
			cu = catchUp{}
		}
		current := !isFenced && cu.current(d.node, st.AppliedIndex)
		want := unlessHalted(desiredVIPs(d.cfg.NodeName, leader, isFenced || !current, d.cfg.VIPs, st), d.node.Halted())
		// Every pass renews the kernel leases, so Set runs even when nothing moved.
		before := d.heldVIPs()
		homeless, err := d.setHolders(vipLinks(want, st, d.cfg.Interface), now, p.cpTTL, p.svcTTL)
		if after := d.heldVIPs(); err != nil {
			d.log.Error("make the interfaces match the replicated state", "want", want, "err", err)
		} else if !slices.Equal(before, after) {
			d.logTransition(leader, wasLeader, isFenced, wasFenced, after)
		}
		if h := describeAddrs(homeless); h != lastHomeless {
			if h != "" {
				d.log.Error("VIPs owned here belong on an interface this node has no --pool interface= for; not announced",
					"vips", homeless)
			}
			lastHomeless = h
		}
		owned := ownedEpochs(d.cfg.NodeName, want, st)
		if again := regained(epochs, owned); len(again) > 0 {
			if err := d.reannounce(vipLinks(again, st, d.cfg.Interface)); err != nil {
				d.log.Warn("announce VIPs that came back between two passes", "vips", again, "err", err)
			}
		}
		epochs = owned
		wasLeader, wasFenced = leader, isFenced
		d.confirmReleases(&acks, st, d.heldVIPs(), now)
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case <-changed:
			changed = d.node.Changed()
			st = d.node.State()
		case <-check.C:
		case <-d.lease.renewed:
		case r := <-cu.pending:
			if err := cu.settle(r); err != nil {
				d.log.Debug("read index for the fence", "err", err)
			}
		}
	}
}

// readIndexRetry spaces ReadIndex attempts while no leader answers.
const readIndexRetry = 50 * time.Millisecond

// catchUp knows whether the state copy the loop acts on holds everything the
// leader had committed when this node last (re)gained contact: one ReadIndex,
// then the copy's own index must cover it. raft's AppliedIndex is not enough: it
// advances when a batch is queued for the FSM, and the loop's copy may be older
// still.
type catchUp struct {
	pending chan readIndexResult // nil when no ReadIndex runs
	target  uint64
	have    bool
	retryAt time.Time
}

type readIndexResult struct {
	index uint64
	err   error
}

// current reports whether the copy whose AppliedIndex is stateIndex has caught
// up, starting a ReadIndex when needed.
func (c *catchUp) current(n *raftstore.Node, stateIndex uint64) bool {
	if c.have {
		return n.Covers(stateIndex, c.target)
	}
	if c.pending == nil && !time.Now().Before(c.retryAt) {
		ch := make(chan readIndexResult, 1)
		c.pending = ch
		go func() {
			idx, err := n.ReadIndex(reportTimeout)
			ch <- readIndexResult{idx, err}
		}()
	}
	return false
}

// settle records the answer of the ReadIndex that current started, and when it
// failed, when to try again; it returns that failure.
func (c *catchUp) settle(r readIndexResult) error {
	c.pending = nil
	if r.err != nil {
		c.retryAt = time.Now().Add(readIndexRetry)
		return r.err
	}
	c.target, c.have = r.index, true
	return nil
}

// logTransition says why the held set changed, one line per event that matters.
func (d *Daemon) logTransition(leader, wasLeader, isFenced, wasFenced bool, held []netip.Addr) {
	switch {
	case leader && !wasLeader:
		if len(d.cfg.VIPs) > 0 {
			d.m.failovers.Inc()
		}
		d.log.Info("became raft leader: holding the control-plane VIPs and this node's service VIPs", "held", held)
	case !leader && wasLeader:
		d.log.Info("no longer raft leader: released the control-plane VIPs", "held", held)
	case isFenced && !wasFenced:
		d.log.Warn("no word from a leader within the fence timeout: released all service VIPs", "fence_timeout", d.cfg.FenceTimeout)
	default:
		d.log.Info("VIPs held here changed", "held", held)
	}
}
