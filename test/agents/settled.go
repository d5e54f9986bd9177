package agents

import (
	"context"
	"fmt"
	"time"

	"github.com/raftvip/raftvip/daemon"
	"github.com/raftvip/raftvip/test/lab"
)

// Settled waits until every agent follows one leader in one term, has applied
// everything the leader committed and heard from it lately, and returns the
// leader. Benchmarks that fault the leader again and again wait for this
// between trials: a node that came back a moment ago may still hold a log the
// leader has not repaired, and a fault then measures two faults, not one.
func Settled(t lab.TB, all []*Agent, timeout time.Duration) *Agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var why string
	for {
		leader, reason := settled(ctx, all)
		if leader != nil {
			return leader
		}
		why = reason
		select {
		case <-ctx.Done():
			t.Fatalf("agents never settled within %s: %s", timeout, why)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// settled checks once; it returns the leader, or nil and what is not settled.
func settled(ctx context.Context, all []*Agent) (*Agent, string) {
	sts := make([]daemon.RaftStatus, len(all))
	var leader *Agent
	var term, commit uint64
	for i, a := range all {
		st, err := a.Status(ctx)
		if err != nil {
			return nil, fmt.Sprintf("%s: %v", a.Name, err)
		}
		sts[i] = st
		if st.State == "Leader" {
			leader, term, commit = a, st.Term, st.CommitIndex
		}
	}
	if leader == nil {
		return nil, "no leader"
	}
	for i, a := range all {
		st := sts[i]
		switch {
		case st.Leader.ID != leader.Name || st.Term != term:
			return nil, fmt.Sprintf("%s follows %q in term %d, not %s in %d", a.Name, st.Leader.ID, st.Term, leader.Name, term)
		case st.AppliedIndex < commit || st.LastLogIndex != st.CommitIndex:
			return nil, fmt.Sprintf("%s applied %d, log %d, commit %d; leader committed %d", a.Name, st.AppliedIndex, st.LastLogIndex, st.CommitIndex, commit)
		case st.LastContactMs < 0 || st.LastContactMs > 50:
			return nil, fmt.Sprintf("%s last heard from the leader %d ms ago", a.Name, st.LastContactMs)
		}
	}
	return leader, ""
}
