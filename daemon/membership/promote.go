package membership

import (
	"fmt"
	"slices"
	"time"
)

// Policy holds the promotion rules' knobs.
type Policy struct {
	// MaxLag is how many entries a nonvoter's applied index may trail the
	// leader's commit index and still count as caught up.
	MaxLag uint64
	// Stable is how long a nonvoter must stay caught up before it is promoted,
	// so a node that catches up for one report and falls behind again is not.
	Stable time.Duration
	// MaxReportAge is how old a nonvoter's last progress report may be: a node
	// that stopped reporting is not promoted on old news.
	MaxReportAge time.Duration
	// MaxVoters caps the voters; further control-plane nodes stay nonvoters
	// (standbys). Odd.
	MaxVoters int
}

// DefaultPolicy is what the leader runs with: within 64 entries for two seconds,
// reports at most two seconds old, up to five voters.
var DefaultPolicy = Policy{MaxLag: 64, Stable: 2 * time.Second, MaxReportAge: 2 * time.Second, MaxVoters: 5}

// Progress is what the leader knows from the reports of one joiner that asked
// to be a voter with a control-plane certificate.
type Progress struct {
	// Applied is the joiner's applied index in its last report, Commit the
	// leader's commit index when that report arrived.
	Applied, Commit uint64
	// ReportedAt is when the last report arrived.
	ReportedAt time.Time
	// CaughtUpSince is when the current run of caught-up reports began; zero
	// while the joiner lags.
	CaughtUpSince time.Time
}

// Observe folds one report into prev: the joiner has applied applied while the
// leader has committed commit.
func Observe(prev Progress, applied, commit uint64, now time.Time, p Policy) Progress {
	next := Progress{Applied: applied, Commit: commit, ReportedAt: now}
	if applied+p.MaxLag >= commit {
		next.CaughtUpSince = prev.CaughtUpSince
		if next.CaughtUpSince.IsZero() {
			next.CaughtUpSince = now
		}
	}
	return next
}

// Promotion is DecidePromotion's answer: ID is the nonvoter to make a voter,
// empty when none; Reason says why (or why not), for logs and status.
type Promotion struct {
	ID      string
	Address string
	Reason  string
}

// DecidePromotion picks at most one nonvoter to promote. Candidates are
// nonvoters with progress (they asked to be voters with a control-plane
// certificate), are
// healthy, reported recently, and have stayed caught up for p.Stable. Nothing is
// promoted while a membership change is in flight (one change at a time).
//
// The odd-count rule: a promotion that leaves an even number of voters happens
// only when a second candidate is ready to follow it at once. An even count
// tolerates no more failures than the odd count below it and needs one more
// vote for every commit, so 1 -> 2 is worse than staying at 1 (either node's loss
// stops the cluster). Holding the lone candidate as a nonvoter loses nothing: it
// already has the log. When a second one is ready the leader promotes both, one
// change after the other, so the cluster spends one commit at the even count.
func DecidePromotion(members []Member, inFlight bool, progress map[string]Progress, now time.Time, p Policy) Promotion {
	if inFlight {
		return Promotion{Reason: "a membership change is in flight"}
	}
	voters := 0
	type cand struct {
		m     Member
		since time.Time
	}
	var ready []cand
	waiting := 0
	for _, m := range members {
		if m.Voter {
			voters++
			continue
		}
		pr, ok := progress[m.ID]
		if !ok {
			continue
		}
		waiting++
		if !m.Healthy || now.Sub(pr.ReportedAt) > p.MaxReportAge || pr.CaughtUpSince.IsZero() || now.Sub(pr.CaughtUpSince) < p.Stable {
			continue
		}
		ready = append(ready, cand{m, pr.CaughtUpSince})
	}
	slices.SortFunc(ready, func(a, b cand) int {
		if c := a.since.Compare(b.since); c != 0 {
			return c
		}
		if a.m.ID < b.m.ID {
			return -1
		}
		return 1
	})
	switch {
	case waiting == 0:
		return Promotion{Reason: "no control-plane nonvoter waits"}
	case voters >= p.MaxVoters:
		return Promotion{Reason: fmt.Sprintf("%d voters, the most allowed: control-plane nonvoters stay standbys", voters)}
	case len(ready) == 0:
		return Promotion{Reason: fmt.Sprintf("%d control-plane nonvoters wait, none caught up for %s", waiting, p.Stable)}
	case (voters+1)%2 == 0 && (len(ready) < 2 || voters+2 > p.MaxVoters):
		return Promotion{Reason: fmt.Sprintf("%s is caught up, held: promoting it alone would leave %d voters, an even count; waiting for a second", ready[0].m.ID, voters+1)}
	}
	c := ready[0].m
	return Promotion{ID: c.ID, Address: c.Address, Reason: fmt.Sprintf("caught up for %s; %d -> %d voters", now.Sub(ready[0].since).Round(time.Millisecond), voters, voters+1)}
}
