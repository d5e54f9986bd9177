package raftstore

import (
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// Why elections are started from here and not by raft's own timer:
//
// hashicorp/raft's follower re-checks its last contact at a random point
// between one and two heartbeat timeouts, so it notices a dead leader between
// one and three timeouts after the last heartbeat. And a voter that still has
// a leader refuses every pre-vote and vote, so an election succeeds only once a
// majority of the survivors have noticed: with three voters, when the later of
// the two survivors has. A link cut measured p50 245 ms, max 524 ms at 100 ms
// timeouts. Where the survivors' logs differ by an entry in flight at the
// moment of the fault, the one with the shorter log may campaign last and be
// refused, and the next try waits out an election timeout.
//
// Instead each voter watches its last contact itself, and when the leader has
// been silent for its campaign delay it lowers raft's heartbeat and election
// timeouts to that delay (ReloadConfig wakes the follower loop, which then
// finds the leader silent for longer than its timeout and campaigns at once).
// The delays are staggered so that the voter meant to win campaigns last,
// when every other survivor has already dropped the old leader and grants
// its votes, and no two voters campaign together (a split vote).

// campaignDelay returns how long after its last contact with the leader the
// voter self waits before it campaigns, and false when self is not a voter.
//
// The survivors are the voters other than lastLeader. They take the slots
// base, base+step, ... in an order every survivor computes alike: those whose
// log holds entries not known to be committed (tail: the entries in flight
// when the leader went silent, which only a longer log can have) take the
// later half of the slots, because a survivor whose log is shorter than
// another's cannot win; within each half, the survivor lowest in name order
// goes last. The last to campaign wins, since every survivor before it has
// already dropped the old leader.
func campaignDelay(self string, voters []string, lastLeader string, tail bool, base, step time.Duration) (time.Duration, bool) {
	var survivors []string
	for _, v := range voters {
		if v != lastLeader {
			survivors = append(survivors, v)
		}
	}
	slices.Sort(survivors)
	rank := slices.Index(survivors, self)
	if rank < 0 {
		return 0, false
	}
	n := len(survivors)
	slot := n - 1 - rank
	if tail {
		slot += n
	}
	return base + time.Duration(slot)*step, true
}

// leaderLossStep is the spacing of the campaign slots, as a fraction of the
// leader-loss timeout: wide enough that a survivor has dropped the old leader
// (one poll plus the raft loop's turn) before the next one's pre-vote
// arrives, narrow enough that three voters' last slot stays within the
// heartbeat timeout.
const leaderLossStep = 5

// leaderLossLoop runs on every node for its whole life. While it is a
// follower that has not heard from the leader for its campaign delay, raft's
// timeouts are lowered to that delay so it campaigns at once; once it leads or
// hears from a leader again, they go back to the configured ones.
func (n *Node) leaderLossLoop() {
	base := n.timing.LeaderLoss
	poll := max(base/25, time.Millisecond)
	t := time.NewTicker(poll)
	defer t.Stop()
	var (
		lastLeader string
		delay      time.Duration // this episode's delay, once decided
		decided    bool
		voter      bool
		lowered    bool
	)
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		}
		state := n.raft.State()
		if state == raft.Shutdown {
			return
		}
		if _, id := n.raft.LeaderWithID(); id != "" {
			lastLeader = string(id)
		}
		silent := time.Since(n.raft.LastContact())
		if state == raft.Leader || (state == raft.Follower && silent < base) {
			if lowered {
				n.setElectionTimeouts(n.timing.Heartbeat, n.timing.Election)
				lowered = false
			}
			decided = false
			continue
		}
		if state != raft.Follower || lowered {
			continue
		}
		if !decided {
			delay, voter = n.campaignDelayNow(lastLeader)
			decided = true
		}
		if voter && silent >= delay {
			n.logger.Info("leader silent: campaigning", "last_leader", lastLeader, "silent", silent.Round(time.Millisecond), "delay", delay)
			n.setElectionTimeouts(delay, delay)
			lowered = true
		}
	}
}

// campaignDelayNow reads the configuration and this node's log for
// campaignDelay.
func (n *Node) campaignDelayNow(lastLeader string) (time.Duration, bool) {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0, false
	}
	var voters []string
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters = append(voters, string(s.ID))
		}
	}
	tail := n.raft.LastIndex() > n.raft.CommitIndex()
	return campaignDelay(n.id, voters, lastLeader, tail, n.timing.LeaderLoss, n.timing.LeaderLoss/leaderLossStep)
}

// setElectionTimeouts replaces raft's heartbeat and election timeouts, keeping
// its other reloadable settings; a shorter heartbeat timeout wakes the
// follower loop to re-check at once.
func (n *Node) setElectionTimeouts(heartbeat, election time.Duration) {
	rc := n.raft.ReloadableConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout = heartbeat, election
	if err := n.raft.ReloadConfig(rc); err != nil {
		n.logger.Warn("cannot change raft timeouts", "heartbeat", heartbeat, "election", election, "error", err)
	}
}
