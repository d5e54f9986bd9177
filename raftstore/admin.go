package raftstore

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// The operator's membership commands (`raftvip members list|remove`) reach the
// local agent over its admin socket; the agent answers them here. Both are
// answered by the leader, the only node that knows when each member last
// answered and the only one that may change the configuration: a follower
// forwards them over the Raft port (ops "members" and "remove" in forward.go).

// Member is one server of the Raft configuration as `raftvip members list`
// shows it.
type Member struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
	// LastContactMs is how long ago the leader last heard from this member: 0
	// for the leader itself, -1 when unknown (never heard from since it became
	// leader, or the list comes from a node that knows no leader).
	LastContactMs int64 `json:"last_contact_ms"`
}

// MemberList is the configuration with the view of whoever answered it. A
// list not FromLeader is one node's own, possibly stale, configuration: what
// an operator gets while the cluster has no quorum.
type MemberList struct {
	AnsweredBy string   `json:"answered_by"`
	FromLeader bool     `json:"from_leader"`
	Members    []Member `json:"members"`
}

// ErrNotMember means a removal named a node that is not in the configuration.
var ErrNotMember = errors.New("not a member")

// ErrUnsafeRemoval means a removal was refused because the cluster would have
// no voter, or no quorum, afterwards.
var ErrUnsafeRemoval = errors.New("refused: the cluster would lose its quorum")

// memberDownAfter is how long the leader may not have heard from a member
// before the removal check counts it as down: ten heartbeat timeouts, at least
// a second. A live follower answers the leader every few milliseconds.
func (n *Node) memberDownAfter() time.Duration {
	return max(10*n.timing.Heartbeat, time.Second)
}

// ListMembers returns the configuration as the leader sees it, asking the
// leader when this node is not it. Without a reachable leader it returns this
// node's own view (FromLeader false) rather than an error: during a quorum loss
// that is exactly what the operator needs to see.
func (n *Node) ListMembers(timeout time.Duration) (MemberList, error) {
	if n.IsLeader() {
		return n.leaderMembers()
	}
	if _, addr := n.Leader(); addr != "" {
		resp, err := n.requestResp(addr, forwardRequest{Op: "members"}, timeout)
		if err == nil && resp.List != nil {
			return *resp.List, nil
		}
		n.logger.Debug("members: leader did not answer, showing the local view", "leader", addr, "err", err)
	}
	servers, err := n.Servers()
	if err != nil {
		return MemberList{}, err
	}
	leaderID, _ := n.Leader()
	list := MemberList{AnsweredBy: n.id}
	for _, s := range servers {
		list.Members = append(list.Members, Member{ID: s.ID, Address: s.Address, Suffrage: s.Suffrage, Leader: s.ID == leaderID, LastContactMs: -1})
	}
	return list, nil
}

// leaderMembers is ListMembers on the leader, with last contacts.
func (n *Node) leaderMembers() (MemberList, error) {
	servers, err := n.Servers()
	if err != nil {
		return MemberList{}, err
	}
	contacts := n.PeerContacts(servers)
	now := time.Now()
	list := MemberList{AnsweredBy: n.id, FromLeader: true}
	for _, s := range servers {
		m := Member{ID: s.ID, Address: s.Address, Suffrage: s.Suffrage, LastContactMs: -1}
		if s.ID == n.id {
			m.Leader, m.LastContactMs = true, 0
		} else if t, ok := contacts[s.ID]; ok {
			m.LastContactMs = now.Sub(t).Milliseconds()
		}
		list.Members = append(list.Members, m)
	}
	return list, nil
}

// RemoveMember removes the member id from the configuration and forgets its
// node report, on the leader or forwarded to it. It refuses, with
// ErrNotMember or ErrUnsafeRemoval, a name that is not a member, the last
// voter, and any removal after which the live voters are no majority (see
// CheckRemoval). A removed node that still runs gets no more log entries; it
// must be stopped, or wiped and joined again.
func (n *Node) RemoveMember(id string, timeout time.Duration) error {
	if n.IsLeader() {
		return n.removeMember(id)
	}
	_, addr := n.Leader()
	if addr == "" {
		return fmt.Errorf("remove %q: %w: a membership change needs a quorum; if a majority is gone for good, see raftvip recover", id, ErrNoLeader)
	}
	if err := n.request(addr, forwardRequest{Op: "remove", ID: id}, timeout); err != nil {
		return fmt.Errorf("remove %q through the leader at %s: %w; a membership change needs a quorum; if a majority is gone for good, see raftvip recover", id, addr, err)
	}
	return nil
}

// removeMember is RemoveMember on the leader.
func (n *Node) removeMember(id string) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("raft configuration: %w", err)
	}
	var servers []Server
	for _, s := range f.Configuration().Servers {
		servers = append(servers, Server{ID: string(s.ID), Address: string(s.Address), Suffrage: suffrage(s.Suffrage)})
	}
	alive := map[string]bool{n.id: true}
	now := time.Now()
	for sid, t := range n.PeerContacts(servers) {
		alive[sid] = now.Sub(t) <= n.memberDownAfter()
	}
	if err := CheckRemoval(servers, alive, id); err != nil {
		return err
	}
	// prevIndex makes raft refuse the change if the configuration moved since it
	// was checked, so the check never runs on a stale configuration.
	if err := n.raft.RemoveServer(raft.ServerID(id), f.Index(), membershipTimeout).Error(); err != nil {
		return fmt.Errorf("raft remove server %q: %w", id, err)
	}
	n.logger.Warn("removed a member on the operator's request", "id", id)
	if id == n.id {
		// A leader that removed itself steps down; the new leader's leader loop
		// keeps or drops its report.
		return nil
	}
	if err := n.Apply(RemoveNode{Name: id}, forwardApplyTimeout); err != nil {
		n.logger.Warn("forget the removed member's report", "id", id, "err", err)
	}
	return nil
}

// CheckRemoval decides whether removing name from servers is safe, given which
// servers are alive now. Removing a nonvoter always is. Removing a voter is
// refused when it is the last one, and when the voters left would not have a
// live majority: the cluster would stop deciding (and every VIP would go
// silent) until the dead ones came back. It is pure so the rules have table
// tests.
func CheckRemoval(servers []Server, alive map[string]bool, name string) error {
	var target *Server
	var names, after, down []string
	for i, s := range servers {
		names = append(names, s.ID)
		if s.ID == name {
			target = &servers[i]
			continue
		}
		if s.Suffrage == SuffrageVoter {
			after = append(after, s.ID)
			if !alive[s.ID] {
				down = append(down, s.ID)
			}
		}
	}
	if target == nil {
		slices.Sort(names)
		return fmt.Errorf("remove %q: %w (members: %s)", name, ErrNotMember, strings.Join(names, ", "))
	}
	if target.Suffrage != SuffrageVoter {
		return nil
	}
	if len(after) == 0 {
		return fmt.Errorf("remove %q: %w: it is the last voter, and a cluster without voters cannot decide anything", name, ErrUnsafeRemoval)
	}
	if live, quorum := len(after)-len(down), len(after)/2+1; live < quorum {
		return fmt.Errorf("remove %q: %w: %d of the %d voters left would be live (down: %s), below their quorum of %d; bring a down voter back first",
			name, ErrUnsafeRemoval, live, len(after), strings.Join(down, ", "), quorum)
	}
	return nil
}

// handleAdminForward answers the membership ops forwarded to the leader. Only a
// voter (by its certificate's name) may remove a member; peer is "" on an
// insecure transport.
func (n *Node) handleAdminForward(peer string, req forwardRequest) forwardResponse {
	switch req.Op {
	case "members":
		list, err := n.leaderMembers()
		if err != nil {
			return forwardResponse{Error: err.Error()}
		}
		return forwardResponse{List: &list}
	case "remove":
		if peer != "" && !n.isVoter(peer) {
			n.logger.Warn("refused forwarded removal from a node that is not a voter", "peer", peer, "id", req.ID)
			return forwardResponse{Error: fmt.Sprintf("%q is not a voter and may not remove members", peer)}
		}
		if err := n.removeMember(req.ID); err != nil {
			return forwardResponse{Error: err.Error()}
		}
	}
	return forwardResponse{}
}

func (n *Node) isVoter(id string) bool {
	servers, err := n.Servers()
	if err != nil {
		return false
	}
	return slices.ContainsFunc(servers, func(s Server) bool { return s.ID == id && s.Suffrage == SuffrageVoter })
}
