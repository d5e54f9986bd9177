package raftstore

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// termAt is the term of the log entry at idx on n.
func termAt(t *testing.T, n *Node, idx uint64) uint64 {
	t.Helper()
	var l raft.Log
	if err := n.logs.GetLog(idx, &l); err != nil {
		t.Fatalf("%s: log entry %d: %v", n.id, idx, err)
	}
	return l.Term
}

func TestNewLeaderAnswersReadIndexOnlyAfterItsTermCommits(t *testing.T) {
	c := newCluster(t, 3, newTestCA(t, "raftvip-test-ca"), DefaultTimeouts())
	old := c.leader()
	for i := range 5 {
		c.apply(allocation(i))
	}
	c.kill(old.id)
	nl := c.leader()
	if nl.LeaderReady() {
		t.Fatal("a new leader is ready before any barrier of its term")
	}
	f := follower(c, nl)
	idx, err := f.ReadIndex(5 * time.Second)
	if err != nil {
		t.Fatalf("follower ReadIndex: %v", err)
	}
	term := nl.raft.CurrentTerm()
	if !nl.LeaderReady() {
		t.Fatal("the leader answered a read-index without running its term's barrier")
	}
	if got := termAt(t, nl, idx); got != term {
		t.Fatalf("read index %d is an entry of term %d, not of the answering leader's term %d", idx, got, term)
	}
	// The leader's own FSM applied the barrier before answering.
	if st := nl.State(); !nl.Covers(st.AppliedIndex, idx) || len(st.Allocations) != 5 {
		t.Fatalf("leader's state at %d does not cover %d (%d allocations)", st.AppliedIndex, idx, len(st.Allocations))
	}
	waitFor(t, "the follower to cover the read index", func() bool { return f.Covers(f.State().AppliedIndex, idx) })
	if n := len(f.State().Allocations); n != 5 {
		t.Fatalf("follower caught up to %d with %d allocations, want the old leader's 5", idx, n)
	}
}

func TestBarrierIsPerTerm(t *testing.T) {
	c := newCluster(t, 3, newTestCA(t, "raftvip-test-ca"), DefaultTimeouts())
	l := c.leader()
	f := follower(c, l)
	if err := f.Barrier(time.Second); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("follower Barrier = %v, want ErrNotLeader", err)
	}
	if err := l.Barrier(5 * time.Second); err != nil {
		t.Fatalf("leader Barrier: %v", err)
	}
	if !l.LeaderReady() || f.LeaderReady() {
		t.Fatalf("ready: leader %v follower %v, want true false", l.LeaderReady(), f.LeaderReady())
	}
	// Leadership away and back: the old term's barrier counts for nothing.
	for _, to := range []*Node{f, l} {
		from := c.leader()
		if err := from.TransferLeadership(to.id); err != nil {
			t.Fatalf("transfer %s -> %s: %v", from.id, to.id, err)
		}
		waitFor(t, "the transfer", func() bool { return c.leader() == to })
		if to.LeaderReady() {
			t.Fatalf("%s ready in term %d before its barrier", to.id, to.raft.CurrentTerm())
		}
		if err := to.Barrier(5 * time.Second); err != nil {
			t.Fatalf("%s Barrier: %v", to.id, err)
		}
		if !to.LeaderReady() || from.LeaderReady() {
			t.Fatalf("after the barrier: %s ready %v, %s ready %v", to.id, to.LeaderReady(), from.id, from.LeaderReady())
		}
		if got := termAt(t, to, to.State().AppliedIndex); got > to.raft.CurrentTerm() {
			t.Fatalf("applied an entry of term %d beyond the current %d", got, to.raft.CurrentTerm())
		}
	}
}

func TestReadIndexRacingElectionsNeverAnswersFromAnOldTerm(t *testing.T) {
	// Ask the moment leadership arrives, when the term's no-op is still in flight.
	// Calm timeouts: raft gives a leadership transfer one election timeout,
	// and at the default 100 ms a loaded CI machine once ran out of it.
	c := newCluster(t, 3, newTestCA(t, "raftvip-test-ca"), calmTimeouts())
	for round := range 4 {
		l := c.leader()
		c.apply(allocation(round))
		to := follower(c, l)
		if err := l.TransferLeadership(to.id); err != nil {
			t.Fatalf("round %d: transfer: %v", round, err)
		}
		waitFor(t, "the new leader", func() bool { return to.IsLeader() })
		idx, err := to.ReadIndex(5 * time.Second)
		if err != nil {
			t.Fatalf("round %d: ReadIndex: %v", round, err)
		}
		if got, term := termAt(t, to, idx), to.raft.CurrentTerm(); got != term {
			t.Fatalf("round %d: read index %d from term %d, leader in term %d", round, idx, got, term)
		}
	}
}
