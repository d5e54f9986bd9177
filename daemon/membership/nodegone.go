package membership

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// NodeGoneGrace is how long a member's Node object must stay deleted before the
// leader removes the member: a Node deleted and created again at once (a tool that
// re-registers it, a kubelet restart) keeps its member.
const NodeGoneGrace = 10 * time.Second

// Removal is DecideNodeRemoval's answer: ID is the member to remove, empty when
// none; Reason says why, or why a member whose Node is gone stays, for the log.
type Removal struct {
	ID     string
	Reason string
}

// DecideNodeRemoval picks at most one member to remove because its Kubernetes
// Node object was deleted (gone maps a node name to when the deletion was seen).
// It runs one change at a time, never removes the leader itself (it must hand
// leadership over first, and removing itself would be a self-inflicted election),
// never the last voter, and never a voter whose removal leaves the live voters
// short of a quorum of those left (the same rule as a wiped voter's re-add). A
// nonvoter (a worker, a standby) is always removable. Of several candidates the
// earliest deletion goes first.
func DecideNodeRemoval(members []Member, gone map[string]time.Time, inFlight bool, now time.Time) Removal {
	type cand struct {
		m    Member
		when time.Time
	}
	var cands []cand
	for _, m := range members {
		if when, ok := gone[m.ID]; ok && now.Sub(when) >= NodeGoneGrace {
			cands = append(cands, cand{m, when})
		}
	}
	if len(cands) == 0 {
		return Removal{}
	}
	if inFlight {
		return Removal{Reason: "a membership change is in flight"}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if c := a.when.Compare(b.when); c != 0 {
			return c
		}
		if a.m.ID < b.m.ID {
			return -1
		}
		return 1
	})
	var held []string
	for _, c := range cands {
		m := c.m
		switch {
		case m.Leader:
			held = append(held, fmt.Sprintf("%s is the leader (remove it after leadership moves, or with raftvip members remove on another node)", m.ID))
			continue
		case !m.Voter:
			return Removal{ID: m.ID, Reason: fmt.Sprintf("Node %s deleted %s ago; a nonvoter", m.ID, now.Sub(c.when).Round(time.Second))}
		}
		live, quorum, left := liveAfterRemoving(members, m.ID)
		if left == 0 {
			held = append(held, fmt.Sprintf("%s is the last voter", m.ID))
			continue
		}
		if live < quorum {
			held = append(held, fmt.Sprintf("removing %s leaves %d live of %d voters, below their quorum of %d", m.ID, live, left, quorum))
			continue
		}
		return Removal{ID: m.ID, Reason: fmt.Sprintf("Node %s deleted %s ago; %d voters left, %d of them live", m.ID, now.Sub(c.when).Round(time.Second), left, live)}
	}
	return Removal{Reason: "members whose Node was deleted stay: " + strings.Join(held, "; ")}
}
