package raftstore

import (
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftvip/raftvip/daemon/membership"
)

// promoteInterval is how often the leader looks for a nonvoter to promote.
const promoteInterval = 250 * time.Millisecond

// promoteLoop runs on every node for its whole life and acts while it leads:
// it promotes the nonvoter membership.DecidePromotion picks, one at a time.
func (n *Node) promoteLoop() {
	t := time.NewTicker(promoteInterval)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		}
		if n.IsLeader() {
			n.promoteOnce(time.Now())
		}
	}
}

// promoteOnce asks the rules once and applies the answer. While the
// configuration change is in flight the transport lets the promoted node speak
// Raft (SetPromoting); prevIndex makes raft refuse the change if the
// configuration moved since it was decided.
func (n *Node) promoteOnce(now time.Time) {
	m := n.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	cfg := f.Configuration()
	nonvoter := map[string]bool{}
	for _, s := range cfg.Servers {
		if s.Suffrage != raft.Voter {
			nonvoter[string(s.ID)] = true
		}
	}
	for id := range m.progress {
		if !nonvoter[id] {
			delete(m.progress, id)
		}
	}
	inFlight := f.Index() > n.raft.CommitIndex()
	p := membership.DecidePromotion(n.membersView(cfg), inFlight, m.progress, now, m.policy)
	view := &promotionView{candidates: make(map[string]bool, len(m.progress)), hold: p.Reason}
	for id := range m.progress {
		view.candidates[id] = true
	}
	if p.ID != "" {
		view.hold = ""
	}
	m.view.Store(view)
	if p.ID == "" {
		if !inFlight && p.Reason != m.lastHold && len(m.progress) > 0 {
			n.logger.Info("promotion waits", "reason", p.Reason)
		}
		if !inFlight {
			m.lastHold = p.Reason
		}
		return
	}
	m.lastHold = ""
	n.SetPromoting(func(id string) bool { return id == p.ID })
	err := n.raft.AddVoter(raft.ServerID(p.ID), raft.ServerAddress(p.Address), f.Index(), membershipTimeout).Error()
	n.SetPromoting(nil)
	if err != nil {
		n.logger.Warn("promotion to voter failed", "id", p.ID, "err", err)
		return
	}
	delete(m.progress, p.ID)
	n.logger.Info("promoted a nonvoter to voter", "id", p.ID, "address", p.Address, "reason", p.Reason)
}
