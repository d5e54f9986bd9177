// Package membership decides who joins the Raft cluster, who is refused and which
// nonvoter becomes a voter. It does no I/O: the leader's loop in raftstore gathers
// the configuration, the joiners' reports and the clock, asks these functions, and
// applies the answer, so every rule has a table test.
package membership

import (
	"fmt"
	"net"
)

// Member is one server of the Raft configuration as the leader sees it.
type Member struct {
	ID      string
	Address string
	Voter   bool
	// Leader marks the leader itself, the node that decides.
	Leader bool
	// Healthy is true when the leader heard from this member recently (always
	// for the leader itself).
	Healthy bool
	// Silent is true when the leader heard from this member at its address
	// before, but not lately, or has led for longer than a member may go
	// unheard without ever hearing from it there: a node that has gone away
	// from there. A member a new leader has not heard from yet is neither
	// Healthy nor Silent.
	Silent bool
	// Candidate marks a nonvoter that joined with a control-plane certificate
	// asking to become a voter, as far as this leader has seen: only that
	// certificate may move its entry.
	Candidate bool
}

// JoinRequest is one join as it reaches the leader: what the joiner claims and
// what its certificate proves.
type JoinRequest struct {
	ID      string
	Address string
	// CertName is the verified certificate's node name; empty on an insecure
	// transport, where nobody is authenticated.
	CertName string
	// ControlPlane is true when the certificate is a control-plane one (always on
	// an insecure transport): only such a node may become, or touch, a voter.
	ControlPlane bool
	// WantVoter is true when the joiner runs with --control-plane and asks to be
	// promoted once caught up.
	WantVoter bool
	// HasState is false when the joiner started with an empty data dir and has not
	// been added since: a wiped or replaced machine.
	HasState bool
}

// Action is what the leader does with a join.
type Action int

// The actions DecideJoin chooses from.
const (
	// Refuse answers the joiner with the decision's code and reason.
	Refuse Action = iota
	// Add adds the joiner as a nonvoter (or moves a control-plane nonvoter's
	// address).
	Add
	// Noop answers success: the joiner already is a member at that address.
	Noop
	// Readd removes the member and adds it again as a nonvoter: its data dir was
	// wiped, so it forgot its votes and must not vote until it has the log again.
	Readd
)

func (a Action) String() string {
	switch a {
	case Add:
		return "add"
	case Noop:
		return "noop"
	case Readd:
		return "readd"
	}
	return "refuse"
}

// Refusal codes: stable strings that label raftvip_raft_joins_refused_total and
// start the error a refused joiner logs, so alerts and operators can match them.
const (
	CodeInvalidRequest  = "invalid_request"
	CodeNameMismatch    = "name_mismatch"
	CodeNotControlPlane = "not_control_plane"
	CodeAddressTaken    = "address_taken"
	CodeLeaderName      = "leader_name"
	CodeVoterReaddress  = "voter_readdress"
	CodeWorkerReaddress = "worker_readdress"
	CodeNonvoterLimit   = "nonvoter_limit"
	CodeQuorumLoss      = "quorum_loss"
)

// PermanentRefusal reports whether a refusal with code can only end by the
// operator changing the joiner itself (its flags or certificate): a joiner
// that was never a member stops with the error rather than ask forever. The
// others can end without touching the joiner: a member removed (by hand, or
// because its Node was deleted), a worker's old address gone silent, a
// nonvoter slot freed, a voter back up.
func PermanentRefusal(code string) bool {
	switch code {
	case CodeInvalidRequest, CodeNameMismatch, CodeNotControlPlane, CodeLeaderName:
		return true
	}
	return false
}

// Codes lists every refusal code, so a metric can export each at zero.
var Codes = []string{
	CodeInvalidRequest, CodeNameMismatch, CodeNotControlPlane, CodeAddressTaken, CodeLeaderName,
	CodeVoterReaddress, CodeWorkerReaddress, CodeNonvoterLimit, CodeQuorumLoss,
}

// JoinDecision is DecideJoin's answer. Code is set only for Refuse; Reason is a
// sentence for the log line and for the refused joiner.
type JoinDecision struct {
	Action Action
	Code   string
	Reason string
}

func refuse(code, format string, args ...any) JoinDecision {
	return JoinDecision{Action: Refuse, Code: code, Reason: fmt.Sprintf(format, args...)}
}

// DecideJoin decides one join against the current members. maxNonvoters caps
// the nonvoters a worker may join as; a control-plane voter-to-be is not counted
// against it, so a cluster full of workers can still grow its control plane.
func DecideJoin(req JoinRequest, members []Member, maxNonvoters int) JoinDecision {
	if req.ID == "" || req.Address == "" {
		return refuse(CodeInvalidRequest, "join needs a node name and an address, got %q at %q", req.ID, req.Address)
	}
	if host, port, err := net.SplitHostPort(req.Address); err != nil || host == "" || port == "" {
		return refuse(CodeInvalidRequest, "join address %q is not HOST:PORT", req.Address)
	}
	if req.CertName != "" && req.CertName != req.ID {
		return refuse(CodeNameMismatch, "certificate is for %q, not %q", req.CertName, req.ID)
	}
	if req.WantVoter && !req.ControlPlane {
		return refuse(CodeNotControlPlane, "%q asks to become a voter but its certificate is a worker's", req.ID)
	}
	var self *Member
	nonvoters := 0
	for i, m := range members {
		if !m.Voter {
			nonvoters++
		}
		if m.ID == req.ID {
			self = &members[i]
		} else if m.Address == req.Address {
			return refuse(CodeAddressTaken, "address %s belongs to member %q; remove it first", req.Address, m.ID)
		}
	}
	switch {
	case self == nil:
		if !(req.WantVoter && req.ControlPlane) && nonvoters >= maxNonvoters {
			return refuse(CodeNonvoterLimit, "the cluster has %d nonvoters, the limit (--max-nonvoters) is %d", nonvoters, maxNonvoters)
		}
		return JoinDecision{Action: Add, Reason: "new member"}
	case self.Voter && !req.ControlPlane:
		return refuse(CodeNotControlPlane, "%q is a voter and the certificate is a worker's", req.ID)
	case self.Leader:
		if req.Address == self.Address && req.HasState {
			return JoinDecision{Action: Noop, Reason: "the leader itself"}
		}
		return refuse(CodeLeaderName, "%q is the leader's own name", req.ID)
	case self.Voter:
		return decideVoter(req, *self, members)
	case req.Address == self.Address:
		return JoinDecision{Action: Noop, Reason: "already a nonvoter at this address"}
	case req.ControlPlane && req.WantVoter:
		return JoinDecision{Action: Add, Reason: fmt.Sprintf("control-plane nonvoter moves from %s", self.Address)}
	}
	return decideWorkerMove(req, *self)
}

// decideWorkerMove decides a join that would move a nonvoter to a new address
// without a control-plane certificate asking to vote: a worker whose address
// changed (DHCP, a new NIC). Its certificate names it, so it may move its own
// entry, but only once the old address has gone silent: while the leader still
// hears from a node there (or has not heard from it yet), the join comes from
// somewhere else with the same name.
// A control-plane candidate's entry moves only with its own certificate.
func decideWorkerMove(req JoinRequest, self Member) JoinDecision {
	switch {
	case self.Candidate:
		return refuse(CodeWorkerReaddress, "%q is a control-plane nonvoter at %s waiting to become a voter; only its control-plane certificate asking to vote may move it to %s",
			req.ID, self.Address, req.Address)
	case !self.Silent:
		return refuse(CodeWorkerReaddress, "worker %q still answers at %s, or has not answered there yet; it may move to %s once the leader stops hearing from the old address (or remove it with raftvip members remove)",
			req.ID, self.Address, req.Address)
	}
	return JoinDecision{Action: Add, Reason: fmt.Sprintf("worker moves from %s, where it no longer answers", self.Address)}
}

// decideVoter decides a join from a node whose name is a voter.
func decideVoter(req JoinRequest, self Member, members []Member) JoinDecision {
	if req.HasState {
		if req.Address == self.Address {
			return JoinDecision{Action: Noop, Reason: "already a voter at this address"}
		}
		return refuse(CodeVoterReaddress, "%q is a voter at %s; a join may not move it to %s (wipe its data dir to replace the machine, or remove it first)",
			req.ID, self.Address, req.Address)
	}
	if live, quorum, left := liveAfterRemoving(members, req.ID); live < quorum {
		return refuse(CodeQuorumLoss, "%q came back with an empty data dir, but removing it leaves %d live of %d voters, below their quorum of %d",
			req.ID, live, left, quorum)
	}
	return JoinDecision{Action: Readd, Reason: "voter came back with an empty data dir: it forgot its votes"}
}

// liveAfterRemoving counts the voters left without id, how many of them are
// live, and their quorum.
func liveAfterRemoving(members []Member, id string) (live, quorum, left int) {
	for _, m := range members {
		if !m.Voter || m.ID == id {
			continue
		}
		left++
		if m.Healthy {
			live++
		}
	}
	return live, left/2 + 1, left
}
