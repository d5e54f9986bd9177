package membership

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// sim is a leader applying the rules the way raftstore does: joins through
// DecideJoin, reports through Observe, one promotion per tick through
// DecidePromotion, with a fake clock and a commit index that moves on.
type sim struct {
	t        *testing.T
	now      time.Time
	commit   uint64
	members  []Member
	progress map[string]Progress
	applied  map[string]uint64 // each joiner's applied index
	log      []string
}

func newSim(t *testing.T) *sim {
	return &sim{t: t, now: t0, commit: 10, progress: map[string]Progress{}, applied: map[string]uint64{},
		members: []Member{{ID: "cp1", Address: addrOf("cp1"), Voter: true, Leader: true, Healthy: true}}}
}

func addrOf(id string) string { return fmt.Sprintf("%s.example:7950", id) }

// join sends one join (or progress report) from id and applies the decision.
func (s *sim) join(id string, controlPlane, hasState bool) JoinDecision {
	s.t.Helper()
	req := JoinRequest{ID: id, Address: addrOf(id), CertName: id, ControlPlane: controlPlane, WantVoter: controlPlane, HasState: hasState}
	d := DecideJoin(req, s.members, 3)
	switch d.Action {
	case Add, Readd:
		s.members = apply(s.members, req)
		s.commit++
		s.log = append(s.log, fmt.Sprintf("%s %s", d.Action, id))
	case Refuse:
		s.log = append(s.log, fmt.Sprintf("refuse %s %s", id, d.Code))
		return d
	}
	if controlPlane {
		s.progress[id] = Observe(s.progress[id], s.applied[id], s.commit, s.now, DefaultPolicy)
	}
	return d
}

// tick advances the clock by 500ms: every joiner catches up by catchUp entries
// and reports, the cluster commits 5 entries, and the leader promotes at most one.
func (s *sim) tick(catchUp uint64) {
	s.now = s.now.Add(500 * time.Millisecond)
	s.commit += 5
	for _, m := range s.members {
		if m.Voter {
			continue
		}
		s.applied[m.ID] = min(s.applied[m.ID]+catchUp, s.commit)
		if _, ok := s.progress[m.ID]; ok {
			s.join(m.ID, true, true)
		}
	}
	p := DecidePromotion(s.members, false, s.progress, s.now, DefaultPolicy)
	if p.ID == "" {
		return
	}
	find(s.members, p.ID).Voter = true
	delete(s.progress, p.ID)
	s.commit++
	s.log = append(s.log, "promote "+p.ID)
}

func (s *sim) voters() []string {
	var out []string
	for _, m := range s.members {
		if m.Voter {
			out = append(out, m.ID)
		}
	}
	slices.Sort(out)
	return out
}

func (s *sim) ticks(n int, catchUp uint64) {
	for i := 0; i < n; i++ {
		s.tick(catchUp)
	}
}

func (s *sim) wantVoters(want ...string) {
	s.t.Helper()
	if got := s.voters(); !slices.Equal(got, want) {
		s.t.Fatalf("voters %v, want %v; log:\n%s", got, want, strings.Join(s.log, "\n"))
	}
}

// The kubeadm lifecycle from issue 13: bootstrap, two control-plane joins, a
// wiped node, growth to five, a sixth as standby, workers up to the cap.
func TestLifecycle(t *testing.T) {
	s := newSim(t)

	// cp2 joins and catches up, but is held: 2 voters would be worse than 1.
	if d := s.join("cp2", true, false); d.Action != Add {
		t.Fatalf("cp2: %+v", d)
	}
	s.ticks(20, 1000)
	s.wantVoters("cp1")

	// cp3 joins through the same path and lags at first: still held.
	s.join("cp3", true, false)
	s.ticks(2, 1)
	s.wantVoters("cp1")
	// Once cp3 has caught up for the stable period, both go, one per tick.
	s.ticks(8, 1000)
	s.wantVoters("cp1", "cp2", "cp3")
	if i, j := slices.Index(s.log, "promote cp2"), slices.Index(s.log, "promote cp3"); i < 0 || j != i+1 {
		t.Fatalf("cp2 and cp3 not promoted back to back:\n%s", strings.Join(s.log, "\n"))
	}

	// cp3 is wiped and comes back: removed, re-added as a nonvoter, promoted
	// again once caught up (3 -> 2 -> 3: the single promotion makes it odd).
	s.applied["cp3"] = 0
	if d := s.join("cp3", true, false); d.Action != Readd {
		t.Fatalf("wiped cp3: %+v", d)
	}
	s.wantVoters("cp1", "cp2")
	s.ticks(8, 1000)
	s.wantVoters("cp1", "cp2", "cp3")

	// A second, identical report from the re-added cp3 with state changes nothing.
	if d := s.join("cp3", true, true); d.Action != Noop {
		t.Fatalf("cp3 after re-add: %+v", d)
	}

	// cp4 is held until cp5 is ready; then 3 -> 4 -> 5.
	s.join("cp4", true, false)
	s.ticks(10, 1000)
	s.wantVoters("cp1", "cp2", "cp3")
	s.join("cp5", true, false)
	s.ticks(10, 1000)
	s.wantVoters("cp1", "cp2", "cp3", "cp4", "cp5")

	// cp6 stays a standby nonvoter.
	s.join("cp6", true, false)
	s.ticks(10, 1000)
	s.wantVoters("cp1", "cp2", "cp3", "cp4", "cp5")
	if m := find(s.members, "cp6"); m == nil || m.Voter {
		t.Fatalf("cp6: %+v", m)
	}

	// Workers: cp6 counts against the cap of 3, so two workers fit and a
	// third is refused; a control-plane node still joins past the cap.
	for _, w := range []string{"w1", "w2"} {
		if d := s.join(w, false, false); d.Action != Add {
			t.Fatalf("%s: %+v", w, d)
		}
	}
	if d := s.join("w3", false, false); d.Code != CodeNonvoterLimit {
		t.Fatalf("w3 past the cap: %+v", d)
	}
	if d := s.join("cp7", true, false); d.Action != Add {
		t.Fatalf("cp7 past the worker cap: %+v", d)
	}
	// Voter re-addressing and workers asking to vote stay refused throughout.
	if d := DecideJoin(cp("cp2", "elsewhere.example:7950"), s.members, 3); d.Code != CodeVoterReaddress {
		t.Fatalf("cp2 elsewhere: %+v", d)
	}
	if d := DecideJoin(JoinRequest{ID: "w1", Address: addrOf("w1"), CertName: "w1", WantVoter: true, HasState: true}, s.members, 3); d.Code != CodeNotControlPlane {
		t.Fatalf("w1 asking to vote: %+v", d)
	}
}

// A node that never catches up (it applies slower than the cluster commits)
// is never promoted, and does not keep a ready one from being promoted.
func TestSlowJoinerIsNeverPromoted(t *testing.T) {
	s := newSim(t)
	s.join("cp2", true, false)
	s.join("cp3", true, false)
	s.commit = 100_000
	s.ticks(40, 1)
	s.wantVoters("cp1")
	// cp4 catches up at once: it pairs with nobody, so stays held.
	s.join("cp4", true, false)
	s.applied["cp4"] = s.commit
	s.ticks(10, 1000)
	s.wantVoters("cp1")
	// cp2 finally catches up: cp2 and cp4 go.
	s.applied["cp2"] = s.commit
	s.ticks(10, 1000)
	if got := s.voters(); len(got) != 3 || !slices.Contains(got, "cp2") || !slices.Contains(got, "cp4") {
		t.Fatalf("voters %v, want cp1, cp2 and cp4:\n%s", got, strings.Join(s.log, "\n"))
	}
}

// A joiner that falls behind again before the stable period ends starts over.
func TestFallingBehindRestartsTheStablePeriod(t *testing.T) {
	s := newSim(t)
	s.members = append(s.members, Member{ID: "cp2", Address: addrOf("cp2"), Voter: true, Healthy: true})
	s.join("cp3", true, false)
	s.applied["cp3"] = s.commit
	s.ticks(3, 1000) // caught up 1.5 s: not yet
	s.wantVoters("cp1", "cp2")
	s.applied["cp3"] = 0
	s.commit += 1000
	s.tick(0) // far behind: the run ends
	s.applied["cp3"] = s.commit
	s.ticks(3, 1000) // caught up again for 1 s: the earlier 1.5 s do not count
	s.wantVoters("cp1", "cp2")
	s.ticks(4, 1000)
	s.wantVoters("cp1", "cp2", "cp3")
}
