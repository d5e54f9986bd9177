package raftstore

import (
	"time"

	"github.com/hashicorp/raft"
)

// pump turns raft observations into leadership notifications, metrics and
// log lines. It keeps undelivered notifications in order instead of
// dropping them, so a slow reader still sees every transition.
func (n *Node) pump() {
	defer close(n.pumpDone)
	leader := false
	lastLeader := ""
	var pending []bool
	handle := func(o raft.Observation) {
		switch d := o.Data.(type) {
		case raft.RaftState:
			n.metrics.stateChanges.WithLabelValues(d.String()).Inc()
			if is := d == raft.Leader; is != leader {
				leader = is
				if is {
					n.leaderSince.Store(int64(time.Since(n.mux.epoch)))
				}
				pending = append(pending, is)
				if len(pending) > 64 {
					// Drop the oldest pair: the reader still ends on the
					// current value and sees the transitions in order.
					pending = pending[2:]
				}
				n.logger.Info("raft leadership changed", "leader", is, "term", n.raft.CurrentTerm())
			}
		case raft.LeaderObservation:
			if d.LeaderID != "" && string(d.LeaderID) != lastLeader {
				lastLeader = string(d.LeaderID)
				n.metrics.leaderChanges.Inc()
				n.logger.Info("raft leader elected", "leader_id", d.LeaderID, "leader_address", d.LeaderAddr, "term", n.raft.CurrentTerm())
			}
		case raft.FailedHeartbeatObservation:
			n.metrics.failedHeartbeats.WithLabelValues(string(d.PeerID)).Inc()
		}
	}
	for {
		var out chan<- bool
		var next bool
		if len(pending) > 0 {
			out, next = n.leaderCh, pending[0]
		}
		select {
		case o := <-n.obsCh:
			handle(o)
		case out <- next:
			pending = pending[1:]
		case <-n.done:
		drain:
			for {
				select {
				case o := <-n.obsCh:
					handle(o)
				default:
					break drain
				}
			}
			for _, v := range pending {
				select {
				case n.leaderCh <- v:
				default:
				}
			}
			return
		}
	}
}
