package membership

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Unix(1_000_000, 0)

var testPolicy = Policy{MaxLag: 10, Stable: 2 * time.Second, MaxReportAge: time.Second, MaxVoters: 5}

func TestObserve(t *testing.T) {
	p := testPolicy
	steps := []struct {
		applied, commit uint64
		at              time.Duration
		since           time.Duration // -1: zero
	}{
		{0, 500, 0, -1},                                            // fresh joiner, far behind
		{400, 500, 100 * time.Millisecond, -1},                     // closer, still 100 behind
		{490, 500, 200 * time.Millisecond, 200 * time.Millisecond}, // within MaxLag: caught up from now
		{505, 510, 300 * time.Millisecond, 200 * time.Millisecond}, // still within
		{500, 500, 400 * time.Millisecond, 200 * time.Millisecond}, // exactly level
		{600, 500, 450 * time.Millisecond, 200 * time.Millisecond}, // ahead of the report's commit (it moved on)
		{500, 600, 500 * time.Millisecond, -1},                     // fell behind: the run ends
		{595, 600, 600 * time.Millisecond, 600 * time.Millisecond}, // a new run starts
	}
	var pr Progress
	for i, s := range steps {
		now := t0.Add(s.at)
		pr = Observe(pr, s.applied, s.commit, now, p)
		if pr.Applied != s.applied || pr.Commit != s.commit || !pr.ReportedAt.Equal(now) {
			t.Fatalf("step %d: %+v does not record the report", i, pr)
		}
		want := time.Time{}
		if s.since >= 0 {
			want = t0.Add(s.since)
		}
		if !pr.CaughtUpSince.Equal(want) {
			t.Fatalf("step %d: caught up since %v, want %v", i, pr.CaughtUpSince, want)
		}
	}
}

func TestObserveZeroLag(t *testing.T) {
	p := testPolicy
	p.MaxLag = 0
	if pr := Observe(Progress{}, 99, 100, t0, p); !pr.CaughtUpSince.IsZero() {
		t.Fatal("one behind counts as caught up with MaxLag 0")
	}
	if pr := Observe(Progress{}, 100, 100, t0, p); !pr.CaughtUpSince.Equal(t0) {
		t.Fatal("level does not count as caught up with MaxLag 0")
	}
}

// ready is progress caught up for d at t0.
func ready(d time.Duration) Progress {
	return Progress{Applied: 100, Commit: 100, ReportedAt: t0.Add(-100 * time.Millisecond), CaughtUpSince: t0.Add(-d)}
}

func cluster(voters int, nonvoters ...string) []Member {
	var ms []Member
	for i := 1; i <= voters; i++ {
		ms = append(ms, Member{ID: fmt.Sprintf("cp%d", i), Address: fmt.Sprintf("10.0.0.%d:7950", i), Voter: true, Leader: i == 1, Healthy: true})
	}
	for i, id := range nonvoters {
		ms = append(ms, Member{ID: id, Address: fmt.Sprintf("10.0.1.%d:7950", i+1), Healthy: true})
	}
	return ms
}

func TestDecidePromotion(t *testing.T) {
	for _, tc := range []struct {
		name     string
		members  []Member
		inFlight bool
		progress map[string]Progress
		want     string
		reason   string
	}{
		{"nothing waits", cluster(1), false, nil, "", "no control-plane nonvoter"},
		{"only workers wait", cluster(1, "w1", "w2"), false, nil, "", "no control-plane nonvoter"},
		{"progress for a departed node is ignored", cluster(3), false, map[string]Progress{"gone": ready(time.Minute)}, "", "no control-plane"},
		{"progress for a voter is ignored", cluster(3), false, map[string]Progress{"cp2": ready(time.Minute)}, "", "no control-plane"},

		// The odd-count rule.
		{"1 voter, one candidate: held", cluster(1, "cp2"), false, map[string]Progress{"cp2": ready(time.Minute)}, "", "even count"},
		{"1 voter, two candidates: the first", cluster(1, "cp2", "cp3"), false, map[string]Progress{"cp2": ready(time.Minute), "cp3": ready(time.Minute)}, "cp2", "1 -> 2"},
		{"1 voter, two candidates, one not stable yet: held", cluster(1, "cp2", "cp3"), false, map[string]Progress{"cp2": ready(time.Minute), "cp3": ready(time.Second)}, "", "even count"},
		{"2 voters, one candidate: promote to 3", cluster(2, "cp3"), false, map[string]Progress{"cp3": ready(3 * time.Second)}, "cp3", "2 -> 3"},
		{"3 voters, one candidate: held", cluster(3, "cp4"), false, map[string]Progress{"cp4": ready(time.Minute)}, "", "4 voters"},
		{"3 voters, two candidates: the first", cluster(3, "cp4", "cp5"), false, map[string]Progress{"cp4": ready(time.Minute), "cp5": ready(time.Minute)}, "cp4", "3 -> 4"},
		{"4 voters (one was removed): promote to 5", cluster(4, "cp5"), false, map[string]Progress{"cp5": ready(3 * time.Second)}, "cp5", "4 -> 5"},
		{"5 voters: the rest stay standbys", cluster(5, "cp6", "cp7"), false, map[string]Progress{"cp6": ready(time.Minute), "cp7": ready(time.Minute)}, "", "standbys"},

		// One change at a time.
		{"a change in flight", cluster(2, "cp3"), true, map[string]Progress{"cp3": ready(time.Minute)}, "", "in flight"},

		// Caught up, for long enough, recently, and alive.
		{"not caught up", cluster(2, "cp3"), false, map[string]Progress{"cp3": {Applied: 10, Commit: 100, ReportedAt: t0}}, "", "none caught up"},
		{"caught up for less than Stable", cluster(2, "cp3"), false, map[string]Progress{"cp3": ready(1999 * time.Millisecond)}, "", "none caught up"},
		{"caught up for exactly Stable", cluster(2, "cp3"), false, map[string]Progress{"cp3": ready(2 * time.Second)}, "cp3", ""},
		{"last report too old", cluster(2, "cp3"), false, map[string]Progress{"cp3": {CaughtUpSince: t0.Add(-time.Minute), ReportedAt: t0.Add(-1001 * time.Millisecond)}}, "", "none caught up"},
		{"last report exactly MaxReportAge old", cluster(2, "cp3"), false, map[string]Progress{"cp3": {CaughtUpSince: t0.Add(-time.Minute), ReportedAt: t0.Add(-time.Second)}}, "cp3", ""},
		{"leader cannot reach it", with(cluster(2, "cp3"), func(m []Member) { m[2].Healthy = false }), false, map[string]Progress{"cp3": ready(time.Minute)}, "", "none caught up"},

		// Which one.
		{"longest caught up first", cluster(2, "cp3", "cp4"), false, map[string]Progress{"cp3": ready(5 * time.Second), "cp4": ready(9 * time.Second)}, "cp4", ""},
		{"tie: by name", cluster(2, "cp9", "cp3"), false, map[string]Progress{"cp3": ready(5 * time.Second), "cp9": ready(5 * time.Second)}, "cp3", ""},
		{"a lagging one does not block a ready one", cluster(2, "cp3", "cp4"), false, map[string]Progress{"cp3": {Applied: 1, Commit: 100, ReportedAt: t0}, "cp4": ready(3 * time.Second)}, "cp4", ""},
		{"workers next to candidates are never picked", cluster(2, "w1", "cp3"), false, map[string]Progress{"cp3": ready(3 * time.Second)}, "cp3", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := DecidePromotion(tc.members, tc.inFlight, tc.progress, t0, testPolicy)
			if got.ID != tc.want {
				t.Fatalf("promote %q (%s), want %q", got.ID, got.Reason, tc.want)
			}
			if !strings.Contains(got.Reason, tc.reason) || got.Reason == "" {
				t.Fatalf("reason %q does not contain %q", got.Reason, tc.reason)
			}
			if got.ID != "" {
				for _, m := range tc.members {
					if m.ID == got.ID && (m.Voter || m.Address != got.Address) {
						t.Fatalf("promotion %+v does not match member %+v", got, m)
					}
				}
			}
		})
	}
}

// Simulates the leader applying DecidePromotion's answers one change at a time
// from one voter with n candidates all ready: the voter count is never even
// between two changes unless the next change makes it odd, and it ends at
// min(1+n, MaxVoters).
func TestPromotionSequences(t *testing.T) {
	for n := 0; n <= 7; n++ {
		t.Run(fmt.Sprintf("%d candidates", n), func(t *testing.T) {
			var ids []string
			progress := map[string]Progress{}
			for i := 0; i < n; i++ {
				id := fmt.Sprintf("cp%d", i+2)
				ids = append(ids, id)
				progress[id] = ready(time.Minute)
			}
			ms := cluster(1, ids...)
			voters := 1
			var counts []int
			for step := 0; step < 20; step++ {
				p := DecidePromotion(ms, false, progress, t0, testPolicy)
				if p.ID == "" {
					break
				}
				// A change in flight holds everything.
				if q := DecidePromotion(ms, true, progress, t0, testPolicy); q.ID != "" {
					t.Fatalf("promoted %s while a change was in flight", q.ID)
				}
				for i := range ms {
					if ms[i].ID == p.ID {
						ms[i].Voter = true
					}
				}
				delete(progress, p.ID)
				voters++
				counts = append(counts, voters)
			}
			want := min(1+n, testPolicy.MaxVoters)
			if want%2 == 0 {
				want-- // the last lone candidate is held
			}
			if voters != want {
				t.Fatalf("ended with %d voters (%v), want %d", voters, counts, want)
			}
			for i, c := range counts {
				if c%2 == 0 && (i+1 >= len(counts) || counts[i+1]%2 == 0) {
					t.Fatalf("voter counts %v: stopped at an even count", counts)
				}
			}
		})
	}
}

func TestDefaultPolicyIsSane(t *testing.T) {
	p := DefaultPolicy
	if p.MaxVoters%2 == 0 || p.MaxVoters < 3 {
		t.Fatalf("MaxVoters %d: want odd and at least 3", p.MaxVoters)
	}
	if p.Stable <= 0 || p.MaxReportAge <= 0 || p.MaxLag == 0 {
		t.Fatalf("policy %+v has a zero knob", p)
	}
}
