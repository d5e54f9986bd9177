package daemon

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// leaderLease is how long this node may still speak as Raft leader, measured
// from the start of the last VerifyLeader that a quorum answered. Every voter
// that answered has reset its election timer after that start, so no other node
// can win an election within the heartbeat timeout of it; the leader lease
// (shorter, checked by config validation) is therefore safe to speak in.
// raft's own state is not enough: a leader frozen by SIGSTOP still believes it
// leads for the first moments after it wakes, while another node already holds
// the VIP.
type leaderLease struct {
	base     time.Time
	verified atomic.Int64 // nanoseconds after base (monotonic) of the last good start; 0: none
	kick     chan struct{}
	renewed  chan struct{}
	// yielded is set while a planned handover of leadership runs: the leader
	// stops speaking for the control-plane VIPs before the transfer, so the new
	// leader never speaks while it still does (cpRelease).
	yielded atomic.Bool
}

// yield gives up speaking for the control-plane VIPs and wakes the announce
// loop. A nil lease (bgp mode, no announce loop) has nothing to give up.
func (l *leaderLease) yield() {
	if l == nil {
		return
	}
	l.yielded.Store(true)
	select {
	case l.renewed <- struct{}{}:
	default:
	}
}

// resume ends a yield: a node that is still leader speaks again within its lease.
func (l *leaderLease) resume() {
	if l != nil {
		l.yielded.Store(false)
	}
}

// apply takes the yield into a pass: a yielded leader holds its service VIPs
// but not the control-plane VIPs.
func (l *leaderLease) apply(p passState) passState {
	if l.yielded.Load() {
		p.leader, p.cpTTL = false, 0
	}
	return p
}

func newLeaderLease() *leaderLease {
	return &leaderLease{base: time.Now(), kick: make(chan struct{}, 1), renewed: make(chan struct{}, 1)}
}

// verifiedAt is the start of the last successful verification, or the zero
// time when there was none in this term.
func (l *leaderLease) verifiedAt() time.Time {
	ns := l.verified.Load()
	if ns == 0 {
		return time.Time{}
	}
	return l.base.Add(time.Duration(ns))
}

// leaseLeft is how much of a lease of length lease remains at now after a
// verification that started at verifiedAt; zero or less means none.
func leaseLeft(verifiedAt, now time.Time, lease time.Duration) time.Duration {
	if verifiedAt.IsZero() {
		return 0
	}
	return lease - now.Sub(verifiedAt)
}

// poke asks the verifier for a round now, for when this node became leader.
func (l *leaderLease) poke() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// run verifies leadership every interval while this node is leader, and at
// once when poked; it forgets the lease when the node is not leader.
func (l *leaderLease) run(ctx context.Context, node *raftstore.Node, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.kick:
		}
		if !node.IsLeader() {
			l.verified.Store(0)
			continue
		}
		// A leader speaks only once an entry of its term has committed (Barrier);
		// a lease verified in an earlier term does not carry over.
		if !node.LeaderReady() {
			l.verified.Store(0)
			if err := node.Barrier(reportTimeout); err != nil {
				continue
			}
		}
		start := time.Now()
		if err := node.VerifyLeader(); err != nil {
			continue
		}
		first := l.verified.Load() == 0
		l.verified.Store(int64(start.Sub(l.base)))
		if first {
			select {
			case l.renewed <- struct{}{}:
			default:
			}
		}
	}
}
