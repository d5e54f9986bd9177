package raftstore

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftvip/raftvip/daemon/membership"
)

// Joins and promotions are decided on the leader by the pure rules in
// daemon/membership; this file gathers their inputs and applies the answers.
// A joiner sends op "join" with a joinInfo: whether it has Raft state of its own
// (a wiped member has not), whether it asks to become a voter, and how far it
// has applied the log. A control-plane joiner keeps sending it until it is a
// voter, which is how the leader learns that it has caught up (promote.go).

// DefaultMaxNonvoters is the nonvoter cap when Config.MaxNonvoters is zero.
const DefaultMaxNonvoters = 256

// joinInfo is what a join request says beyond the node's name and address.
type joinInfo struct {
	// HasState is false from a node that started with an empty data dir and
	// has not been added since.
	HasState bool `json:"has_state"`
	// Voter asks to be promoted once caught up (--control-plane); the
	// certificate decides whether it may.
	Voter bool `json:"voter,omitempty"`
	// Applied is the joiner's applied index, its progress report.
	Applied uint64 `json:"applied,omitempty"`
}

// memberState is the leader's (and the joiner's) membership bookkeeping.
type memberState struct {
	// controlPlane: this node joins as a voter-to-be.
	controlPlane bool
	// startedEmpty: Open found no Raft state and did not bootstrap.
	startedEmpty bool
	// joined: a join of this run was answered with success.
	joined       atomic.Bool
	maxNonvoters int
	policy       membership.Policy
	refused      *prometheus.CounterVec

	// mu serializes every join decision and promotion on the leader: one
	// membership change at a time, each decided on the configuration it changes.
	mu       sync.Mutex
	progress map[string]membership.Progress
	// lastHold is the last promotion reason logged, so a held promotion is
	// logged once, not every tick.
	lastHold string
	// view is what status shows of the promotions, written by the leader's
	// promotion pass, read without mu (a promotion holds mu while it commits).
	view atomic.Pointer[promotionView]
}

// promotionView is the last promotion pass's outcome: the nonvoters asking to
// become voters, and why none was promoted ("" when one was, or none asked).
type promotionView struct {
	candidates map[string]bool
	hold       string
}

// Promotion states a status shows for a nonvoter (StatusServer.Promotion).
const (
	PromotionPromoting = "promoting"
	PromotionWaiting   = "waiting"
)

// promotionState is what status shows of srv's promotion on the leader: "" for
// a voter or a nonvoter that does not ask to vote (a worker), "promoting" while
// its change commits, else "waiting: REASON".
func promotionState(srv Server, promoting bool, v *promotionView) string {
	switch {
	case srv.Suffrage == SuffrageVoter:
		return ""
	case promoting:
		return PromotionPromoting
	case v == nil || !v.candidates[srv.ID]:
		return ""
	case v.hold == "":
		return PromotionWaiting + ": next in line"
	}
	return PromotionWaiting + ": " + v.hold
}

func newMemberState(cfg Config) *memberState {
	maxNV := cfg.MaxNonvoters
	if maxNV == 0 {
		maxNV = DefaultMaxNonvoters
	}
	m := &memberState{
		controlPlane: cfg.ControlPlane,
		maxNonvoters: maxNV,
		policy:       membership.DefaultPolicy,
		progress:     map[string]membership.Progress{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raftvip_raft_joins_refused_total",
			Help: "Joins this node refused as leader, by reason code (see docs/architecture.md).",
		}, []string{"reason"}),
	}
	for _, c := range membership.Codes {
		m.refused.WithLabelValues(c)
	}
	return m
}

// joinRequest is this node's join: name, address and joinInfo.
func (n *Node) joinRequest() forwardRequest {
	return forwardRequest{Op: "join", ID: n.id, Address: string(n.trans.LocalAddr()), Join: &joinInfo{
		HasState: !n.mem.startedEmpty || n.mem.joined.Load(),
		Voter:    n.mem.controlPlane,
		Applied:  n.raft.AppliedIndex(),
	}}
}

// AwaitingPromotion reports whether this node joined as a voter-to-be and is not
// a voter yet: its join loop keeps reporting its progress to the leader.
func (n *Node) AwaitingPromotion() bool {
	return n.mem.controlPlane && !n.isVoter(n.id)
}

// membersView is cfg as the membership rules see it, with the leader's view of
// who is healthy and which nonvoters asked it to become voters. The caller holds
// n.mem.mu.
func (n *Node) membersView(cfg raft.Configuration) []membership.Member {
	servers := make([]Server, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		servers = append(servers, Server{ID: string(s.ID), Address: string(s.Address), Suffrage: suffrage(s.Suffrage)})
	}
	contacts := n.PeerContacts(servers)
	now := time.Now()
	since, led := n.leaderSinceTime()
	// A member this leader has not heard from in all the time it has led, for
	// longer than a member may go unheard, has gone away from its address as
	// surely as one heard once and not since: without this, a worker that moved
	// while the old leader knew it waited for --worker-removal-timeout after
	// every leader change.
	unheardAll := led && now.Sub(since) > n.memberDownAfter()
	out := make([]membership.Member, 0, len(servers))
	for _, s := range servers {
		_, candidate := n.mem.progress[s.ID]
		m := membership.Member{ID: s.ID, Address: s.Address, Voter: s.Suffrage == SuffrageVoter, Candidate: candidate && s.Suffrage != SuffrageVoter}
		if s.ID == n.id {
			m.Leader, m.Healthy = true, true
		} else if t, ok := contacts[s.ID]; ok {
			m.Healthy = now.Sub(t) <= n.memberDownAfter()
			m.Silent = !m.Healthy
		} else {
			m.Silent = unheardAll
		}
		out = append(out, m)
	}
	return out
}

// handleJoin is the leader's answer to a join from the peer with identity id.
// A request without joinInfo (an older joiner) counts as a worker with state.
func (n *Node) handleJoin(id Identity, req forwardRequest) forwardResponse {
	info := joinInfo{HasState: true}
	if req.Join != nil {
		info = *req.Join
	}
	m := n.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return forwardResponse{Error: fmt.Sprintf("raft configuration: %v", err)}
	}
	jr := membership.JoinRequest{ID: req.ID, Address: req.Address, CertName: id.Name, ControlPlane: id.ControlPlane,
		WantVoter: info.Voter, HasState: info.HasState}
	d := membership.DecideJoin(jr, n.membersView(f.Configuration()), m.maxNonvoters)
	log := n.logger.With("id", req.ID, "address", req.Address, "peer", id.Name, "control_plane", id.ControlPlane, "voter_wanted", info.Voter)
	switch d.Action {
	case membership.Refuse:
		m.refused.WithLabelValues(d.Code).Inc()
		log.Warn("refused join", "code", d.Code, "reason", d.Reason)
		return forwardResponse{Error: joinRefusedPrefix + d.Code + "): " + d.Reason}
	case membership.Add:
		if err := n.raft.AddNonvoter(raft.ServerID(req.ID), raft.ServerAddress(req.Address), f.Index(), membershipTimeout).Error(); err != nil {
			return forwardResponse{Error: fmt.Sprintf("raft add nonvoter %q at %s: %v", req.ID, req.Address, err)}
		}
		log.Info("added nonvoter", "reason", d.Reason)
	case membership.Readd:
		rf := n.raft.RemoveServer(raft.ServerID(req.ID), f.Index(), membershipTimeout)
		if err := rf.Error(); err != nil {
			return forwardResponse{Error: fmt.Sprintf("raft remove wiped member %q: %v", req.ID, err)}
		}
		log.Warn("removed a member that came back with an empty data dir", "reason", d.Reason)
		if err := n.raft.AddNonvoter(raft.ServerID(req.ID), raft.ServerAddress(req.Address), rf.Index(), membershipTimeout).Error(); err != nil {
			return forwardResponse{Error: fmt.Sprintf("raft re-add wiped member %q at %s: %v", req.ID, req.Address, err)}
		}
		log.Warn("re-added a member as a nonvoter")
	}
	if info.Voter && id.ControlPlane {
		m.progress[req.ID] = membership.Observe(m.progress[req.ID], info.Applied, n.raft.CommitIndex(), time.Now(), m.policy)
	}
	return forwardResponse{}
}

// joinRefusedPrefix starts the error a leader answers a refused join with, so
// the joiner can read the code back (older leaders answer the same text).
const joinRefusedPrefix = "join refused ("

// JoinRefusedError is a join the leader refused, with its stable code
// (membership.Code*) and the leader's reason.
type JoinRefusedError struct {
	Code, Reason string
	err          error
}

func (e *JoinRefusedError) Error() string { return e.err.Error() }

// Unwrap gives the error as the transport returned it.
func (e *JoinRefusedError) Unwrap() error { return e.err }

// asJoinRefused wraps err in a JoinRefusedError when the leader's answer was a
// refusal; other errors pass unchanged.
func asJoinRefused(resp forwardResponse, err error) error {
	if err == nil || !strings.HasPrefix(resp.Error, joinRefusedPrefix) {
		return err
	}
	code, reason, ok := strings.Cut(strings.TrimPrefix(resp.Error, joinRefusedPrefix), "): ")
	if !ok || code == "" {
		return err
	}
	return &JoinRefusedError{Code: code, Reason: reason, err: err}
}
