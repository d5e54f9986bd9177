package raftstore

import (
	"fmt"

	"github.com/hashicorp/raft"
)

// TransferLeadership hands leadership to the voter toID, or to the most
// up-to-date voter when toID is empty.
func (n *Node) TransferLeadership(toID string) error {
	var f raft.Future
	if toID == "" {
		f = n.raft.LeadershipTransfer()
	} else {
		servers, err := n.Servers()
		if err != nil {
			return err
		}
		var target *Server
		for i := range servers {
			if servers[i].ID == toID {
				target = &servers[i]
			}
		}
		switch {
		case target == nil:
			return fmt.Errorf("raft transfer leadership: %q is not a cluster member", toID)
		case target.Suffrage != SuffrageVoter:
			return fmt.Errorf("raft transfer leadership: %q is a %s, not a voter", toID, target.Suffrage)
		case toID == n.id:
			return fmt.Errorf("raft transfer leadership: %q is this node", toID)
		}
		f = n.raft.LeadershipTransferToServer(raft.ServerID(toID), raft.ServerAddress(target.Address))
	}
	if err := f.Error(); err != nil {
		return fmt.Errorf("raft transfer leadership to %q: %w", toID, err)
	}
	return nil
}

// AddNonvoter adds (or re-addresses) a node that receives the log but does
// not vote: a worker joining the cluster. Adding an unchanged member is a
// no-op; adding an existing voter keeps it a voter.
func (n *Node) AddNonvoter(id, addr string) error {
	if id == "" || addr == "" {
		return fmt.Errorf("raft add nonvoter %q=%q: empty ID or address", id, addr)
	}
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	for _, s := range servers {
		if s.ID == id && s.Address == addr {
			return nil
		}
	}
	if err := n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, membershipTimeout).Error(); err != nil {
		return fmt.Errorf("raft add nonvoter %q at %s: %w", id, addr, err)
	}
	return nil
}

// RemoveServer removes a member. Removing an unknown ID is a no-op.
func (n *Node) RemoveServer(id string) error {
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	for _, s := range servers {
		if s.ID == id {
			if err := n.raft.RemoveServer(raft.ServerID(id), 0, membershipTimeout).Error(); err != nil {
				return fmt.Errorf("raft remove server %q: %w", id, err)
			}
			return nil
		}
	}
	return nil
}
