package membership

import (
	"strings"
	"testing"
	"time"
)

func TestDecideNodeRemoval(t *testing.T) {
	now := time.Unix(10_000, 0)
	long := now.Add(-time.Minute)  // deleted well past the grace
	fresh := now.Add(-time.Second) // deleted within the grace
	earlier := now.Add(-2 * time.Minute)
	leader := Member{ID: "cp1", Address: "a:1", Voter: true, Leader: true, Healthy: true}
	v := func(id string, healthy bool) Member {
		return Member{ID: id, Address: id + ":1", Voter: true, Healthy: healthy}
	}
	nv := func(id string) Member { return Member{ID: id, Address: id + ":1", Healthy: true} }
	three := []Member{leader, v("cp2", true), v("cp3", false)}
	tests := []struct {
		name     string
		members  []Member
		gone     map[string]time.Time
		inFlight bool
		wantID   string
		reason   string // a substring of Reason
	}{
		{"nothing deleted", three, nil, false, "", ""},
		{"deleted Node that is no member", three, map[string]time.Time{"cp9": long}, false, "", ""},
		{"dead voter whose Node was deleted", three, map[string]time.Time{"cp3": long}, false, "cp3", "2 voters left, 2 of them live"},
		{"within the grace", three, map[string]time.Time{"cp3": fresh}, false, "", ""},
		{"exactly at the grace", three, map[string]time.Time{"cp3": now.Add(-NodeGoneGrace)}, false, "cp3", "deleted 10s ago"},
		{"in flight", three, map[string]time.Time{"cp3": long}, true, "", "in flight"},
		{"live voter while another is dead: quorum would be lost", three, map[string]time.Time{"cp2": long}, false, "", "leaves 1 live of 2 voters, below their quorum of 2"},
		{"live voter of three healthy", []Member{leader, v("cp2", true), v("cp3", true)}, map[string]time.Time{"cp2": long}, false, "cp2", "2 voters left"},
		{"the leader itself", three, map[string]time.Time{"cp1": long}, false, "", "cp1 is the leader"},
		{"the last voter", []Member{leader}, map[string]time.Time{"cp1": long}, false, "", "cp1 is the leader"},
		{"last voter that is not the leader", []Member{v("cp2", true), nv("cp1")}, map[string]time.Time{"cp2": long}, false, "", "cp2 is the last voter"},
		{"a worker", append(three, nv("w1")), map[string]time.Time{"w1": long}, false, "w1", "a nonvoter"},
		{"a worker even when the voters are short", []Member{leader, v("cp2", false), v("cp3", false), nv("w1")}, map[string]time.Time{"w1": long}, false, "w1", "nonvoter"},
		{"earliest deletion first", append(three, nv("w1")), map[string]time.Time{"w1": long, "cp3": earlier}, false, "cp3", ""},
		{"same time: by name", append(three, nv("w1"), nv("w0")), map[string]time.Time{"w1": long, "w0": long}, false, "w0", ""},
		{"a held one does not block the next", append(three, nv("w1")), map[string]time.Time{"cp2": earlier, "w1": long}, false, "w1", ""},
		{"several held: every reason", []Member{leader, v("cp2", true), v("cp3", false)}, map[string]time.Time{"cp1": earlier, "cp2": long}, false, "", "cp1 is the leader (remove it after leadership moves, or with raftvip members remove on another node); removing cp2"},
		{"five voters, two dead, remove one dead", []Member{leader, v("cp2", true), v("cp3", true), v("cp4", false), v("cp5", false)}, map[string]time.Time{"cp4": long}, false, "cp4", "4 voters left, 3 of them live"},
		{"five voters, two dead, remove a live one", []Member{leader, v("cp2", true), v("cp3", true), v("cp4", false), v("cp5", false)}, map[string]time.Time{"cp2": long}, false, "", "leaves 2 live of 4 voters, below their quorum of 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := DecideNodeRemoval(tc.members, tc.gone, tc.inFlight, now)
			if got.ID != tc.wantID || !strings.Contains(got.Reason, tc.reason) {
				t.Fatalf("DecideNodeRemoval = %+v, want ID %q with a reason containing %q", got, tc.wantID, tc.reason)
			}
			if got.ID != "" && got.Reason == "" {
				t.Fatalf("a removal without a reason: %+v", got)
			}
		})
	}
}

// TestDecideNodeRemovalNeverLosesQuorum walks every cluster of up to five voters
// and two workers, with every health and every set of deleted Nodes: a chosen
// voter's removal always leaves a live majority of the voters left, and the
// leader is never chosen.
func TestDecideNodeRemovalNeverLosesQuorum(t *testing.T) {
	now := time.Unix(10_000, 0)
	names := []string{"cp1", "cp2", "cp3", "cp4", "cp5", "w1", "w2"}
	for voters := 1; voters <= 5; voters++ {
		for health := 0; health < 1<<voters; health++ {
			for del := 0; del < 1<<(voters+2); del++ {
				var members []Member
				for i := range voters {
					members = append(members, Member{ID: names[i], Address: names[i] + ":1", Voter: true, Leader: i == 0, Healthy: i == 0 || health&(1<<i) != 0})
				}
				members = append(members, Member{ID: "w1", Address: "w1:1", Healthy: true}, Member{ID: "w2", Address: "w2:1"})
				gone := map[string]time.Time{}
				for i, m := range members {
					if del&(1<<i) != 0 {
						gone[m.ID] = now.Add(-time.Minute)
					}
				}
				r := DecideNodeRemoval(members, gone, false, now)
				if r.ID == "" {
					continue
				}
				if _, ok := gone[r.ID]; !ok {
					t.Fatalf("removed %s whose Node is not gone", r.ID)
				}
				var chosen Member
				live, left := 0, 0
				for _, m := range members {
					if m.ID == r.ID {
						chosen = m
						continue
					}
					if m.Voter {
						left++
						if m.Healthy {
							live++
						}
					}
				}
				if chosen.Leader {
					t.Fatalf("removed the leader: %+v", members)
				}
				if chosen.Voter && (left == 0 || live < left/2+1) {
					t.Fatalf("removing %s leaves %d live of %d voters: %+v", r.ID, live, left, members)
				}
			}
		}
	}
}
