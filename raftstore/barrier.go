package raftstore

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// A node that has just won an election does not know yet what was committed: its
// commit index may still be the one its predecessor last told it, and its FSM may
// not have applied the entries in between. Raft's answer is that a leader trusts
// its commit index only once an entry of its own term has committed (Raft thesis
// §6.4). hashicorp/raft appends a no-op at the start of every term; a Barrier
// after it returns once that no-op and everything before it is committed and
// applied to this node's FSM. Until then this node acts on nothing as leader.

// termBarrier remembers the term whose barrier this node completed as leader.
type termBarrier struct {
	mu    sync.Mutex    // one barrier at a time; latecomers reuse its result
	ready atomic.Uint64 // the term of the last completed barrier; 0: none
}

// LeaderReady reports whether this node is the leader and has committed and
// applied an entry of its current term, so its commit index and its FSM hold
// everything any earlier leader committed. A leader that is not ready must not
// allocate, assign owners, announce as leader or answer ReadIndex.
func (n *Node) LeaderReady() bool {
	return n.IsLeader() && n.barrier.ready.Load() == n.raft.CurrentTerm()
}

// Barrier makes this leader ready for its term (see LeaderReady): it commits a
// barrier after the term's first entry and waits, at most timeout, until the
// local FSM has applied it. It returns at once when the term's barrier is done,
// ErrNotLeader on followers, and an error when leadership was lost meanwhile.
func (n *Node) Barrier(timeout time.Duration) error {
	if n.LeaderReady() {
		return nil
	}
	n.barrier.mu.Lock()
	defer n.barrier.mu.Unlock()
	if n.LeaderReady() {
		return nil
	}
	if !n.IsLeader() {
		return ErrNotLeader
	}
	term := n.raft.CurrentTerm()
	start := time.Now()
	if err := n.raft.Barrier(timeout).Error(); err != nil {
		return fmt.Errorf("raft barrier for term %d: %w", term, err)
	}
	// A barrier that finished in a later term proves nothing about this one; the
	// caller retries and the next barrier runs in the term it then sees.
	if !n.IsLeader() || n.raft.CurrentTerm() != term {
		return fmt.Errorf("raft barrier for term %d: %w", term, ErrLeadershipLost)
	}
	n.barrier.ready.Store(term)
	n.logger.Info("leader barrier committed: acting as leader", "term", term, "applied_index", n.fsm.Index(), "took", time.Since(start).Round(time.Microsecond))
	return nil
}
