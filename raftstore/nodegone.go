package raftstore

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftvip/raftvip/daemon/membership"
)

// RemoveDeletedNode (leader only) removes at most one member whose Kubernetes
// Node object was deleted (gone: name -> when the deletion was seen), as
// membership.DecideNodeRemoval picks it: one change at a time, never the
// leader, never one that leaves the live voters without a quorum. It returns
// the decision, so the caller can log a member that stays and why. prevIndex
// makes raft refuse the change if the configuration moved since it was decided.
func (n *Node) RemoveDeletedNode(gone map[string]time.Time, now time.Time) (membership.Removal, error) {
	if len(gone) == 0 {
		return membership.Removal{}, nil
	}
	m := n.mem
	m.mu.Lock()
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		m.mu.Unlock()
		return membership.Removal{}, fmt.Errorf("raft configuration: %w", err)
	}
	inFlight := f.Index() > n.raft.CommitIndex()
	r := membership.DecideNodeRemoval(n.membersView(f.Configuration()), gone, inFlight, now)
	if r.ID == "" {
		m.mu.Unlock()
		return r, nil
	}
	err := n.raft.RemoveServer(raft.ServerID(r.ID), f.Index(), membershipTimeout).Error()
	delete(m.progress, r.ID)
	m.mu.Unlock()
	if err != nil {
		return r, fmt.Errorf("raft remove server %q: %w", r.ID, err)
	}
	if err := n.Apply(RemoveNode{Name: r.ID}, forwardApplyTimeout); err != nil {
		n.logger.Warn("forget the removed member's report", "id", r.ID, "err", err)
	}
	return r, nil
}
