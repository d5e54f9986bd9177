package membership

import (
	"slices"
	"strings"
	"testing"
)

// three is a healthy 3-voter cluster led by cp1, with one worker.
func three() []Member {
	return []Member{
		{ID: "cp1", Address: "10.0.0.1:7950", Voter: true, Leader: true, Healthy: true},
		{ID: "cp2", Address: "10.0.0.2:7950", Voter: true, Healthy: true},
		{ID: "cp3", Address: "10.0.0.3:7950", Voter: true, Healthy: true},
		{ID: "w1", Address: "10.0.1.1:7950", Healthy: true},
	}
}

func with(ms []Member, f func([]Member)) []Member {
	out := slices.Clone(ms)
	f(out)
	return out
}

// cp is a control-plane joiner with state, asking to vote; wk a worker with
// state. Both carry a certificate matching the name.
func cp(id, addr string) JoinRequest {
	return JoinRequest{ID: id, Address: addr, CertName: id, ControlPlane: true, WantVoter: true, HasState: true}
}

func wk(id, addr string) JoinRequest {
	return JoinRequest{ID: id, Address: addr, CertName: id, HasState: true}
}

func wiped(r JoinRequest) JoinRequest { r.HasState = false; return r }

func TestDecideJoin(t *testing.T) {
	for _, tc := range []struct {
		name    string
		req     JoinRequest
		members []Member
		max     int
		action  Action
		code    string
		// reason must contain this.
		reason string
	}{
		// Requests that say nothing usable.
		{"empty name", JoinRequest{Address: "10.0.0.9:7950"}, three(), 10, Refuse, CodeInvalidRequest, "node name"},
		{"empty address", JoinRequest{ID: "n9"}, three(), 10, Refuse, CodeInvalidRequest, "address"},
		{"address without port", wk("n9", "10.0.0.9"), three(), 10, Refuse, CodeInvalidRequest, "HOST:PORT"},
		{"address without host", wk("n9", ":7950"), three(), 10, Refuse, CodeInvalidRequest, "HOST:PORT"},
		{"address with empty port", wk("n9", "10.0.0.9:"), three(), 10, Refuse, CodeInvalidRequest, "HOST:PORT"},

		// Identity.
		{"certificate for another name", JoinRequest{ID: "n9", Address: "10.0.0.9:7950", CertName: "n8", HasState: true}, three(), 10, Refuse, CodeNameMismatch, `"n8"`},
		{"certificate for a voter, claiming a new name", JoinRequest{ID: "n9", Address: "10.0.0.9:7950", CertName: "cp2", ControlPlane: true}, three(), 10, Refuse, CodeNameMismatch, "cp2"},
		{"insecure transport: no certificate name", JoinRequest{ID: "n9", Address: "10.0.0.9:7950", ControlPlane: true}, three(), 10, Add, "", "new member"},
		{"worker asks to vote", JoinRequest{ID: "n9", Address: "10.0.0.9:7950", CertName: "n9", WantVoter: true, HasState: true}, three(), 10, Refuse, CodeNotControlPlane, "worker"},

		// New members.
		{"new worker", wk("w2", "10.0.1.2:7950"), three(), 10, Add, "", "new member"},
		{"new worker, empty data dir", wiped(wk("w2", "10.0.1.2:7950")), three(), 10, Add, "", "new member"},
		{"new control-plane node", cp("cp4", "10.0.0.4:7950"), three(), 10, Add, "", "new member"},
		{"new control-plane node, empty data dir", wiped(cp("cp4", "10.0.0.4:7950")), three(), 10, Add, "", "new member"},
		{"control-plane certificate joining as a worker", JoinRequest{ID: "w2", Address: "10.0.1.2:7950", CertName: "w2", ControlPlane: true, HasState: true}, three(), 10, Add, "", "new member"},
		{"new member at another member's address", wk("w2", "10.0.1.1:7950"), three(), 10, Refuse, CodeAddressTaken, `"w1"`},
		{"new control-plane node at a voter's address", wiped(cp("cp4", "10.0.0.3:7950")), three(), 10, Refuse, CodeAddressTaken, `"cp3"`},

		// The nonvoter cap.
		{"worker below the cap", wk("w2", "10.0.1.2:7950"), three(), 2, Add, "", ""},
		{"worker at the cap", wk("w2", "10.0.1.2:7950"), three(), 1, Refuse, CodeNonvoterLimit, "--max-nonvoters"},
		{"worker with a cap of zero", wk("w2", "10.0.1.2:7950"), three(), 0, Refuse, CodeNonvoterLimit, "limit"},
		{"control-plane voter-to-be past the cap", cp("cp4", "10.0.0.4:7950"), three(), 1, Add, "", ""},
		{"control-plane certificate not asking to vote, at the cap", JoinRequest{ID: "w2", Address: "10.0.1.2:7950", CertName: "w2", ControlPlane: true, HasState: true}, three(), 1, Refuse, CodeNonvoterLimit, ""},
		{"known worker at the cap, same address", wk("w1", "10.0.1.1:7950"), three(), 1, Noop, "", ""},

		// Existing voters.
		{"voter, same address", cp("cp2", "10.0.0.2:7950"), three(), 10, Noop, "", "already a voter"},
		{"voter, same address, not asking to vote", JoinRequest{ID: "cp2", Address: "10.0.0.2:7950", CertName: "cp2", ControlPlane: true, HasState: true}, three(), 10, Noop, "", ""},
		{"voter at a new address", cp("cp2", "10.0.0.22:7950"), three(), 10, Refuse, CodeVoterReaddress, "10.0.0.22:7950"},
		{"worker certificate naming a voter", wk("cp2", "10.0.0.2:7950"), three(), 10, Refuse, CodeNotControlPlane, "voter"},
		{"worker certificate naming a voter, new address", wk("cp2", "10.0.9.9:7950"), three(), 10, Refuse, CodeNotControlPlane, "voter"},
		{"worker certificate naming a voter, empty data dir", wiped(wk("cp2", "10.0.0.2:7950")), three(), 10, Refuse, CodeNotControlPlane, ""},

		// Wiped voters.
		{"wiped voter, same address", wiped(cp("cp3", "10.0.0.3:7950")), three(), 10, Readd, "", "empty data dir"},
		{"wiped voter on a new machine", wiped(cp("cp3", "10.0.0.33:7950")), three(), 10, Readd, "", ""},
		{"wiped voter, another voter down", wiped(cp("cp3", "10.0.0.3:7950")), with(three(), func(m []Member) { m[1].Healthy = false }), 10, Refuse, CodeQuorumLoss, "1 live of 2"},
		{"wiped voter itself seen as down", wiped(cp("cp3", "10.0.0.3:7950")), with(three(), func(m []Member) { m[2].Healthy = false }), 10, Readd, "", ""},
		{"wiped voter of five, one other down", wiped(cp("cp5", "10.0.0.5:7950")), five(func(m []Member) { m[1].Healthy = false }), 10, Readd, "", ""},
		{"wiped voter of five, two others down", wiped(cp("cp5", "10.0.0.5:7950")), five(func(m []Member) { m[1].Healthy, m[2].Healthy = false, false }), 10, Refuse, CodeQuorumLoss, "2 live of 4"},
		{"wiped voter of two", wiped(cp("cp2", "10.0.0.2:7950")), three()[:2], 10, Readd, "", ""},
		{"wiped voter at another member's address", wiped(cp("cp3", "10.0.0.2:7950")), three(), 10, Refuse, CodeAddressTaken, ""},

		// The leader's own name.
		{"leader's name, same address, with state", cp("cp1", "10.0.0.1:7950"), three(), 10, Noop, "", "leader"},
		{"leader's name, empty data dir", wiped(cp("cp1", "10.0.0.1:7950")), three(), 10, Refuse, CodeLeaderName, "leader"},
		{"worker certificate with the leader's name", wk("cp1", "10.0.0.1:7950"), three(), 10, Refuse, CodeNotControlPlane, "worker"},
		{"leader's name, new address", cp("cp1", "10.0.0.11:7950"), three(), 10, Refuse, CodeLeaderName, ""},

		// Existing nonvoters.
		{"worker, same address", wk("w1", "10.0.1.1:7950"), three(), 10, Noop, "", "already a nonvoter"},
		{"worker, same address, empty data dir", wiped(wk("w1", "10.0.1.1:7950")), three(), 10, Noop, "", ""},
		{"worker at a new address, old one still answers", wk("w1", "10.0.1.11:7950"), three(), 10, Refuse, CodeWorkerReaddress, "10.0.1.11:7950"},
		{"worker at a new address, empty data dir, old one still answers", wiped(wk("w1", "10.0.1.11:7950")), three(), 10, Refuse, CodeWorkerReaddress, "members remove"},
		{"worker at a new address, old one silent", wk("w1", "10.0.1.11:7950"), silentW1(), 10, Add, "", "moves from 10.0.1.1:7950"},
		{"worker at a new address, empty data dir, old one silent", wiped(wk("w1", "10.0.1.11:7950")), silentW1(), 10, Add, "", "no longer answers"},
		{"worker at a new address, never heard at the old one", wk("w1", "10.0.1.11:7950"), with(three(), func(m []Member) { m[3].Healthy = false }), 10, Refuse, CodeWorkerReaddress, "not answered there yet"},
		{"worker moving, at the cap", wk("w1", "10.0.1.11:7950"), silentW1(), 0, Add, "", ""},
		{"worker moving to another member's address", wk("w1", "10.0.0.2:7950"), silentW1(), 10, Refuse, CodeAddressTaken, `"cp2"`},
		{"worker certificate with another worker's silent name", JoinRequest{ID: "w1", Address: "10.0.1.11:7950", CertName: "w9", HasState: true}, silentW1(), 10, Refuse, CodeNameMismatch, "w9"},
		{"insecure transport: worker moving, old one silent", JoinRequest{ID: "w1", Address: "10.0.1.11:7950", HasState: true}, silentW1(), 10, Add, "", ""},
		{"control-plane nonvoter, same address", cp("cp4", "10.0.0.4:7950"), withCP4(), 10, Noop, "", ""},
		{"control-plane nonvoter at a new address", cp("cp4", "10.0.0.44:7950"), withCP4(), 10, Add, "", "moves from 10.0.0.4:7950"},
		{"control-plane nonvoter at a new address, not asking to vote", JoinRequest{ID: "cp4", Address: "10.0.0.44:7950", CertName: "cp4", ControlPlane: true, HasState: true}, withCP4(), 10, Refuse, CodeWorkerReaddress, ""},
		{"control-plane nonvoter moving, at the cap", cp("cp4", "10.0.0.44:7950"), withCP4(), 0, Add, "", ""},
		{"worker certificate for a control-plane nonvoter, new address", wk("cp4", "10.0.0.44:7950"), withCP4(), 10, Refuse, CodeWorkerReaddress, "waiting to become a voter"},
		{"worker certificate for a silent control-plane nonvoter", wk("cp4", "10.0.0.44:7950"), with(withCP4(), func(m []Member) { m[4].Healthy, m[4].Silent = false, true }), 10, Refuse, CodeWorkerReaddress, "only its control-plane certificate"},
		{"control-plane certificate not asking to vote, silent candidate", JoinRequest{ID: "cp4", Address: "10.0.0.44:7950", CertName: "cp4", ControlPlane: true, HasState: true}, with(withCP4(), func(m []Member) { m[4].Healthy, m[4].Silent = false, true }), 10, Refuse, CodeWorkerReaddress, ""},
		{"silent candidate moving with its own certificate", cp("cp4", "10.0.0.44:7950"), with(withCP4(), func(m []Member) { m[4].Healthy, m[4].Silent = false, true }), 10, Add, "", "control-plane nonvoter moves"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := slices.Clone(tc.members)
			d := DecideJoin(tc.req, tc.members, tc.max)
			if d.Action != tc.action || d.Code != tc.code {
				t.Fatalf("got %s/%q (%s), want %s/%q", d.Action, d.Code, d.Reason, tc.action, tc.code)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("reason %q does not contain %q", d.Reason, tc.reason)
			}
			if d.Reason == "" {
				t.Fatal("empty reason")
			}
			if tc.action == Refuse && !slices.Contains(Codes, d.Code) {
				t.Fatalf("code %q is not in Codes", d.Code)
			}
			if !slices.Equal(before, tc.members) {
				t.Fatal("DecideJoin changed its input")
			}
		})
	}
}

func five(f func([]Member)) []Member {
	ms := []Member{
		{ID: "cp1", Address: "10.0.0.1:7950", Voter: true, Leader: true, Healthy: true},
		{ID: "cp2", Address: "10.0.0.2:7950", Voter: true, Healthy: true},
		{ID: "cp3", Address: "10.0.0.3:7950", Voter: true, Healthy: true},
		{ID: "cp4", Address: "10.0.0.4:7950", Voter: true, Healthy: true},
		{ID: "cp5", Address: "10.0.0.5:7950", Voter: true, Healthy: true},
	}
	f(ms)
	return ms
}

func withCP4() []Member {
	return append(three(), Member{ID: "cp4", Address: "10.0.0.4:7950", Healthy: true, Candidate: true})
}

// silentW1 is three() with the worker's old address no longer answering.
func silentW1() []Member {
	return with(three(), func(m []Member) { m[3].Healthy, m[3].Silent = false, true })
}

// The cap counts nonvoters, whoever they are: control-plane ones waiting for
// promotion take room from workers too.
func TestDecideJoinCountsEveryNonvoter(t *testing.T) {
	ms := withCP4()
	if d := DecideJoin(wk("w2", "10.0.1.2:7950"), ms, 2); d.Action != Refuse || d.Code != CodeNonvoterLimit {
		t.Fatalf("got %s/%s with 2 nonvoters and a cap of 2", d.Action, d.Code)
	}
	if d := DecideJoin(wk("w2", "10.0.1.2:7950"), ms, 3); d.Action != Add {
		t.Fatalf("got %s/%s with 2 nonvoters and a cap of 3", d.Action, d.Code)
	}
}

func TestCodesAreStableAndDistinct(t *testing.T) {
	want := []string{"invalid_request", "name_mismatch", "not_control_plane", "address_taken", "leader_name",
		"voter_readdress", "worker_readdress", "nonvoter_limit", "quorum_loss"}
	if !slices.Equal(Codes, want) {
		t.Fatalf("Codes = %v, want %v: codes label a metric and alerts match them, never rename one", Codes, want)
	}
	for _, c := range Codes {
		if strings.ToLower(c) != c || strings.ContainsAny(c, " -") {
			t.Fatalf("code %q is not snake_case", c)
		}
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{Refuse: "refuse", Add: "add", Noop: "noop", Readd: "readd", Action(42): "refuse"} {
		if got := a.String(); got != want {
			t.Errorf("%d: %q, want %q", a, got, want)
		}
	}
}

// Whatever the request, a worker certificate never gets a voter's entry changed
// and never gets to vote.
func TestWorkerNeverTouchesVoters(t *testing.T) {
	for _, id := range []string{"cp1", "cp2", "cp3"} {
		for _, addr := range []string{"10.0.0.1:7950", "10.0.0.2:7950", "10.0.0.3:7950", "10.0.9.9:7950"} {
			for _, hasState := range []bool{true, false} {
				for _, want := range []bool{true, false} {
					req := JoinRequest{ID: id, Address: addr, CertName: id, WantVoter: want, HasState: hasState}
					d := DecideJoin(req, three(), 100)
					if d.Action != Refuse {
						t.Errorf("%+v: %s (%s)", req, d.Action, d.Reason)
					}
				}
			}
		}
	}
}

func TestPermanentRefusal(t *testing.T) {
	want := map[string]bool{
		CodeInvalidRequest:  true,
		CodeNameMismatch:    true,
		CodeNotControlPlane: true,
		CodeLeaderName:      true,
		CodeAddressTaken:    false, // ends when the member there is removed
		CodeVoterReaddress:  false, // ends when the old voter is removed (by hand or its Node deleted)
		CodeWorkerReaddress: false, // ends when the old address goes silent
		CodeNonvoterLimit:   false, // ends when a slot frees
		CodeQuorumLoss:      false, // ends when voters are back
	}
	if len(want) != len(Codes) {
		t.Fatalf("the table covers %d codes, Codes has %d", len(want), len(Codes))
	}
	for _, code := range Codes {
		if got := PermanentRefusal(code); got != want[code] {
			t.Errorf("PermanentRefusal(%q) = %v, want %v", code, got, want[code])
		}
	}
	if PermanentRefusal("a_code_from_a_newer_leader") {
		t.Error("an unknown code counts as permanent; it must be retried")
	}
}
