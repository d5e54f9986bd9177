package raftstore

import (
	"testing"
	"time"
)

// TestCampaignDelay: every survivor computes its own slot from the same
// inputs; the slots must all differ (no two campaign together), the lowest
// name goes last within each half, a survivor with an uncommitted tail goes
// after every survivor without one, and the silent leader or a non-voter gets
// no slot.
func TestCampaignDelay(t *testing.T) {
	ms := time.Millisecond
	base, step := 50*ms, 10*ms
	for _, tc := range []struct {
		name       string
		self       string
		voters     []string
		lastLeader string
		tail       bool
		want       time.Duration
		ok         bool
	}{
		{"three voters, lowest survivor goes last", "a", []string{"a", "b", "c"}, "c", false, 60 * ms, true},
		{"three voters, the other survivor goes first", "b", []string{"a", "b", "c"}, "c", false, 50 * ms, true},
		{"order of the configuration does not matter", "b", []string{"c", "b", "a"}, "c", false, 50 * ms, true},
		{"leader in the middle of the names", "a", []string{"a", "b", "c"}, "b", false, 60 * ms, true},
		{"leader in the middle, the other survivor", "c", []string{"a", "b", "c"}, "b", false, 50 * ms, true},
		{"with a tail, after every slot without one", "b", []string{"a", "b", "c"}, "c", true, 70 * ms, true},
		{"with a tail, lowest name still last", "a", []string{"a", "b", "c"}, "c", true, 80 * ms, true},
		{"the silent leader itself gets no slot", "c", []string{"a", "b", "c"}, "c", false, 0, false},
		{"a non-voter gets no slot", "w", []string{"a", "b", "c"}, "c", false, 0, false},
		{"no voters known", "a", nil, "", false, 0, false},
		{"no leader known yet: every voter is a survivor", "a", []string{"a", "b", "c"}, "", false, 70 * ms, true},
		{"no leader known yet, highest name first", "c", []string{"a", "b", "c"}, "", false, 50 * ms, true},
		{"a leader no longer in the configuration", "b", []string{"a", "b", "c"}, "gone", false, 60 * ms, true},
		{"five voters, first slot", "e", []string{"a", "b", "c", "d", "e"}, "a", false, 50 * ms, true},
		{"five voters, last slot without tail", "b", []string{"a", "b", "c", "d", "e"}, "a", false, 80 * ms, true},
		{"five voters, last slot of all", "b", []string{"a", "b", "c", "d", "e"}, "a", true, 120 * ms, true},
		{"single voter, itself the last leader", "a", []string{"a"}, "a", false, 0, false},
		{"single voter with no leader", "a", []string{"a"}, "", false, 50 * ms, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := campaignDelay(tc.self, tc.voters, tc.lastLeader, tc.tail, base, step)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("campaignDelay(%q, %v, leader %q, tail %v) = %s, %v; want %s, %v", tc.self, tc.voters, tc.lastLeader, tc.tail, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestCampaignDelaySlotsAreDistinct: for every cluster size up to seven and
// every mix of tails, no two survivors share a slot, and every survivor with a
// tail campaigns after every one without.
func TestCampaignDelaySlotsAreDistinct(t *testing.T) {
	names := []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7"}
	for size := 2; size <= len(names); size++ {
		voters := names[:size]
		leader := voters[size/2]
		for mask := 0; mask < 1<<size; mask++ {
			seen := map[time.Duration]string{}
			var latestPlain, earliestTail time.Duration = 0, time.Hour
			for i, v := range voters {
				tail := mask&(1<<i) != 0
				d, ok := campaignDelay(v, voters, leader, tail, 50*time.Millisecond, 10*time.Millisecond)
				if v == leader {
					if ok {
						t.Fatalf("size %d: the silent leader %s got slot %s", size, v, d)
					}
					continue
				}
				if !ok {
					t.Fatalf("size %d: survivor %s got no slot", size, v)
				}
				if other, dup := seen[d]; dup {
					t.Fatalf("size %d mask %b: %s and %s both campaign at %s", size, mask, other, v, d)
				}
				seen[d] = v
				if tail {
					earliestTail = min(earliestTail, d)
				} else {
					latestPlain = max(latestPlain, d)
				}
			}
			if earliestTail <= latestPlain {
				t.Fatalf("size %d mask %b: a survivor with a tail campaigns at %s, before one without at %s", size, mask, earliestTail, latestPlain)
			}
		}
	}
}

// TestLeaderLossElectsInOneRound kills the leader of a three-node mutual-TLS
// cluster three times. The timeouts are the defaults scaled up ten times, so a
// test machine busy with other packages does not shift a survivor by a whole
// slot (100 ms here; at 40 ms a CI run under load once saw two rounds). With equal logs the
// survivor lowest in name order campaigns last and wins, in the very next
// term: the other survivor has dropped the old leader by then and grants its
// votes, and nobody split the vote. Afterwards every node runs raft's
// configured timeouts again, not the lowered ones of its campaign.
func TestLeaderLossElectsInOneRound(t *testing.T) {
	tm := DefaultTimeouts()
	tm.Heartbeat, tm.LeaderLoss, tm.Election, tm.LeaderLease = 10*tm.Heartbeat, 10*tm.LeaderLoss, 10*tm.Election, 10*tm.LeaderLease
	c := newCluster(t, 3, newTestCA(t, "ca"), tm)
	c.apply(SetPools{Pools: []Pool{{Name: "default", Ranges: []string{"198.51.100.0/24"}}}})
	for trial := range 3 {
		l := settle(c)
		term := l.raft.CurrentTerm()
		survivors := others(c, l)
		want := survivors[0]
		for _, s := range survivors[1:] {
			if s.id < want.id {
				want = s
			}
		}
		c.kill(l.id)
		nl := c.leader()
		if nl != want || nl.raft.CurrentTerm() != term+1 {
			t.Fatalf("trial %d: %s killed in term %d; %s leads in term %d, want %s in term %d", trial, l.id, term, nl.id, nl.raft.CurrentTerm(), want.id, term+1)
		}
		c.start(l.id)
		settle(c)
		waitFor(t, "every node back on the configured timeouts", func() bool {
			for _, n := range c.running() {
				rc := n.raft.ReloadableConfig()
				if rc.HeartbeatTimeout != tm.Heartbeat || rc.ElectionTimeout != tm.Election {
					return false
				}
			}
			return true
		})
	}
}
