package raftstore

import (
	"fmt"
	"time"
)

// MemberWarnings is what an operator should notice about the membership in a
// Status: an even voter count, and each member not heard from for longer than
// silentAfter (unknown contacts, -1, never warn). It is pure so the rules have
// table tests; /raft/status and `raftvip status` show its lines.
func MemberWarnings(servers []StatusServer, silentAfter time.Duration) []string {
	var out []string
	voters := 0
	for _, s := range servers {
		if s.Suffrage == SuffrageVoter {
			voters++
		}
	}
	if voters > 0 && voters%2 == 0 {
		quorum := voters/2 + 1
		out = append(out, fmt.Sprintf(
			"%d voters is an even count: its quorum of %d survives %d voter(s) down, no more than %d voters would, and a network split into two halves leaves neither side a quorum; add or remove one voter",
			voters, quorum, voters-quorum, voters-1))
	}
	for _, s := range servers {
		if s.LastContactMs < 0 || time.Duration(s.LastContactMs)*time.Millisecond <= silentAfter {
			continue
		}
		silent := (time.Duration(s.LastContactMs) * time.Millisecond).Round(100 * time.Millisecond)
		out = append(out, fmt.Sprintf("%s %s at %s not heard from for %s (more than %s); if it is gone for good, remove it with raftvip members remove %s",
			s.Suffrage, s.ID, s.Address, silent, silentAfter, s.ID))
	}
	return out
}
