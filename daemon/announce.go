package daemon

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// desiredVIPs is what this node must hold on its interface right now, from the
// replicated state alone:
//   - the control-plane VIPs while it is the Raft leader;
//   - the service VIPs the FSM says it owns, unless fenced: the caller fences a
//     follower that has not heard from a leader within the fence timeout, and any
//     node whose FSM has not caught up with the leader's commit index.
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
			if o.Node != self {
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

// fenced reports whether a follower has gone too long without a leader.
func fenced(lastContact time.Time, fence time.Duration, now time.Time) bool {
	return lastContact.IsZero() || now.Sub(lastContact) > fence
}

// announceLoop makes the interface match desiredVIPs, on every leadership change,
// every FSM change, and often enough to notice the fence timeout passing.
func (d *Daemon) announceLoop(ctx context.Context) {
	if d.holder == nil {
		return
	}
	changes := d.node.LeadershipChanges()
	check := time.NewTicker(max(d.cfg.FenceTimeout/6, 10*time.Millisecond))
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
	st, stIndex := d.node.StateAt()
	for {
		leader := d.node.IsLeader()
		isFenced := !leader && fenced(d.node.LastContact(), d.cfg.FenceTimeout, time.Now())
		// A leader stepping down was current; a new leader may not have applied
		// what its predecessor committed.
		if isFenced || (leader && !wasLeader) {
			cu = catchUp{}
		}
		current := !isFenced && cu.current(d.node, stIndex)
		want := desiredVIPs(d.cfg.NodeName, leader, isFenced || !current, d.cfg.VIPs, st)
		if !slices.Equal(sortedAddrs(d.holder.Held()), want) {
			if err := d.holder.Set(want); err != nil {
				d.log.Error("make the interface match the replicated state", "want", want, "err", err)
			} else {
				d.logTransition(leader, wasLeader, isFenced, wasFenced, want)
			}
		}
		wasLeader, wasFenced = leader, isFenced
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case <-changed:
			changed = d.node.Changed()
			st, stIndex = d.node.StateAt()
		case <-check.C:
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

// current reports whether the copy taken at stateIndex has caught up, starting a
// ReadIndex when needed.
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
