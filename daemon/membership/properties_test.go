package membership

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"
)

// randomMembers is a configuration with 1-7 voters (the first leads) and 0-5
// nonvoters, each healthy or not, on distinct addresses.
func randomMembers(r *rand.Rand) []Member {
	var ms []Member
	nv := 1 + r.Intn(7)
	for i := 0; i < nv; i++ {
		ms = append(ms, Member{ID: fmt.Sprintf("cp%d", i+1), Address: fmt.Sprintf("10.0.0.%d:7950", i+1), Voter: true,
			Leader: i == 0, Healthy: i == 0 || r.Intn(4) > 0})
	}
	for i := 0; i < r.Intn(6); i++ {
		healthy := r.Intn(4) > 0
		ms = append(ms, Member{ID: fmt.Sprintf("n%d", i+1), Address: fmt.Sprintf("10.0.1.%d:7950", i+1), Healthy: healthy, Silent: !healthy && r.Intn(2) == 0, Candidate: r.Intn(3) == 0})
	}
	return ms
}

// randomRequest names a member or a stranger, at its own address, another
// member's, or a new one, with any certificate and flags.
func randomRequest(r *rand.Rand, ms []Member) JoinRequest {
	var req JoinRequest
	switch r.Intn(3) {
	case 0:
		req.ID = ms[r.Intn(len(ms))].ID
	case 1:
		req.ID = fmt.Sprintf("new%d", r.Intn(3))
	default:
		req.ID = []string{"", "cp1", "n1"}[r.Intn(3)]
	}
	switch r.Intn(4) {
	case 0:
		for _, m := range ms {
			if m.ID == req.ID {
				req.Address = m.Address
			}
		}
	case 1:
		req.Address = ms[r.Intn(len(ms))].Address
	case 2:
		req.Address = fmt.Sprintf("10.0.9.%d:7950", r.Intn(3))
	default:
		req.Address = []string{"", "10.0.9.9", ":7950"}[r.Intn(3)]
	}
	switch r.Intn(4) {
	case 0:
		req.CertName = ""
	case 1:
		req.CertName = "someone-else"
	default:
		req.CertName = req.ID
	}
	req.ControlPlane = r.Intn(2) == 0
	req.WantVoter = r.Intn(2) == 0
	req.HasState = r.Intn(2) == 0
	return req
}

func find(ms []Member, id string) *Member {
	for i := range ms {
		if ms[i].ID == id {
			return &ms[i]
		}
	}
	return nil
}

// apply is what the leader does with an Add or Readd: the member is a nonvoter
// at the request's address afterwards.
func apply(ms []Member, req JoinRequest) []Member {
	out := slices.DeleteFunc(slices.Clone(ms), func(m Member) bool { return m.ID == req.ID })
	return append(out, Member{ID: req.ID, Address: req.Address, Healthy: true})
}

func liveMajority(ms []Member) bool {
	voters, live := 0, 0
	for _, m := range ms {
		if m.Voter {
			voters++
			if m.Healthy {
				live++
			}
		}
	}
	return live >= voters/2+1
}

func TestDecideJoinProperties(t *testing.T) {
	r := rand.New(rand.NewSource(13))
	seen := map[Action]int{}
	codes := map[string]int{}
	for i := 0; i < 20000; i++ {
		ms := randomMembers(r)
		req := randomRequest(r, ms)
		max := r.Intn(8)
		d := DecideJoin(req, ms, max)
		seen[d.Action]++
		codes[d.Code]++
		self := find(ms, req.ID)
		where := lazy(func() string {
			return fmt.Sprintf("request %+v, members %+v, max %d: %s/%s (%s)", req, ms, max, d.Action, d.Code, d.Reason)
		})
		if d.Reason == "" {
			t.Fatalf("%s: no reason", where)
		}
		if (d.Action == Refuse) != (d.Code != "") || (d.Code != "" && !slices.Contains(Codes, d.Code)) {
			t.Fatalf("%s: code does not match the action", where)
		}
		if d.Action == Refuse {
			continue
		}
		// Whatever is accepted names the certificate's node.
		if req.CertName != "" && req.CertName != req.ID {
			t.Fatalf("%s: accepted under another certificate's name", where)
		}
		if req.WantVoter && !req.ControlPlane {
			t.Fatalf("%s: worker certificate accepted as a voter-to-be", where)
		}
		// No two members ever share an address.
		for _, m := range ms {
			if m.ID != req.ID && m.Address == req.Address {
				t.Fatalf("%s: accepted at %s's address", where, m.ID)
			}
		}
		switch d.Action {
		case Noop:
			if self == nil || self.Address != req.Address {
				t.Fatalf("%s: noop for a node that is not a member at that address", where)
			}
			if self.Voter && !req.ControlPlane {
				t.Fatalf("%s: a worker certificate passes as a voter", where)
			}
		case Add:
			if self != nil && self.Voter {
				t.Fatalf("%s: add would demote or move voter", where)
			}
			// Without a control-plane certificate asking to vote, only a worker
			// whose old address went silent moves its own entry.
			if self != nil && !(req.ControlPlane && req.WantVoter) && (self.Candidate || !self.Silent) {
				t.Fatalf("%s: moved a candidate's entry, or one whose old address still answers", where)
			}
			if self == nil && !(req.ControlPlane && req.WantVoter) {
				nonvoters := 0
				for _, m := range ms {
					if !m.Voter {
						nonvoters++
					}
				}
				if nonvoters >= max {
					t.Fatalf("%s: worker added past the cap", where)
				}
			}
		case Readd:
			if self == nil || !self.Voter || self.Leader || req.HasState || !req.ControlPlane {
				t.Fatalf("%s: re-add of something other than a wiped voter", where)
			}
			after := apply(ms, req)
			wasLive := liveMajority(ms)
			if !liveMajority(after) && wasLive {
				t.Fatalf("%s: re-add loses the live majority", where)
			}
			if !liveMajority(after) {
				t.Fatalf("%s: re-add leaves no live majority", where)
			}
		}
	}
	for _, a := range []Action{Refuse, Add, Noop, Readd} {
		if seen[a] == 0 {
			t.Errorf("the generator never produced %s: %v", a, seen)
		}
	}
	for _, c := range Codes {
		if codes[c] == 0 {
			t.Errorf("the generator never produced code %s: %v", c, codes)
		}
	}
}

func randomProgress(r *rand.Rand, ms []Member, now time.Time) map[string]Progress {
	out := map[string]Progress{}
	for _, m := range ms {
		if r.Intn(3) == 0 {
			continue
		}
		p := Progress{Applied: uint64(r.Intn(200)), Commit: 100, ReportedAt: now.Add(-time.Duration(r.Intn(3000)) * time.Millisecond)}
		if r.Intn(3) > 0 {
			p.CaughtUpSince = now.Add(-time.Duration(r.Intn(5000)) * time.Millisecond)
		}
		out[m.ID] = p
	}
	return out
}

func TestDecidePromotionProperties(t *testing.T) {
	r := rand.New(rand.NewSource(10))
	promoted := 0
	for i := 0; i < 20000; i++ {
		ms := randomMembers(r)
		progress := randomProgress(r, ms, t0)
		inFlight := r.Intn(5) == 0
		p := DecidePromotion(ms, inFlight, progress, t0, testPolicy)
		where := lazy(func() string {
			return fmt.Sprintf("members %+v, progress %+v, in flight %v: %+v", ms, progress, inFlight, p)
		})
		if p.Reason == "" {
			t.Fatalf("%s: no reason", where)
		}
		if p.ID == "" {
			continue
		}
		promoted++
		if inFlight {
			t.Fatalf("%s: promoted during a change", where)
		}
		m := find(ms, p.ID)
		if m == nil || m.Voter || !m.Healthy || m.Address != p.Address {
			t.Fatalf("%s: promoted something other than a healthy nonvoter", where)
		}
		pr, ok := progress[p.ID]
		if !ok || pr.CaughtUpSince.IsZero() || t0.Sub(pr.CaughtUpSince) < testPolicy.Stable || t0.Sub(pr.ReportedAt) > testPolicy.MaxReportAge {
			t.Fatalf("%s: promoted a node that has not stayed caught up", where)
		}
		voters := 0
		for _, m := range ms {
			if m.Voter {
				voters++
			}
		}
		if voters+1 > testPolicy.MaxVoters {
			t.Fatalf("%s: past MaxVoters", where)
		}
		if (voters+1)%2 == 0 {
			// The next decision, with this one applied, must promote again.
			after := slices.Clone(ms)
			find(after, p.ID).Voter = true
			rest := maps(progress, p.ID)
			if q := DecidePromotion(after, false, rest, t0, testPolicy); q.ID == "" {
				t.Fatalf("%s: left an even count with no second candidate (%s)", where, q.Reason)
			}
		}
	}
	if promoted == 0 {
		t.Fatal("the generator never produced a promotion")
	}
}

// maps copies progress without id.
func maps(progress map[string]Progress, id string) map[string]Progress {
	out := map[string]Progress{}
	for k, v := range progress {
		if k != id {
			out[k] = v
		}
	}
	return out
}

// lazy formats a failure's context only when it is printed.
type lazy func() string

func (l lazy) String() string { return l() }
