package raftstore

import (
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// Suffrage values reported in Server.Suffrage.
const (
	SuffrageVoter    = "voter"
	SuffrageNonvoter = "nonvoter"
	SuffrageStaging  = "staging"
)

// Server is one member of the Raft configuration.
type Server struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
}

// LeaderInfo names the leader a node knows of; empty during elections.
type LeaderInfo struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// Status is the node's view of the cluster, served as JSON by the status
// endpoint and read by `raftvip status`.
type Status struct {
	Node   string     `json:"node"`
	State  string     `json:"state"`
	Leader LeaderInfo `json:"leader"`
	Term   uint64     `json:"term"`
	// LastLogIndex is the newest index in the log or the last snapshot.
	LastLogIndex uint64 `json:"last_log_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// LastContactMs is how long ago this node heard from the leader: 0 on
	// the leader, -1 when it never has.
	LastContactMs     int64    `json:"last_contact_ms"`
	Servers           []Server `json:"servers"`
	LastSnapshotIndex uint64   `json:"last_snapshot_index"`
}

// Status collects the node's Raft status. A stopped node reports state
// "Shutdown" and what it knew last.
func (n *Node) Status() Status {
	state := n.raft.State()
	id, addr := n.Leader()
	s := Status{
		Node:          n.id,
		State:         state.String(),
		Leader:        LeaderInfo{ID: id, Address: addr},
		Term:          n.raft.CurrentTerm(),
		LastLogIndex:  n.raft.LastIndex(),
		CommitIndex:   n.raft.CommitIndex(),
		AppliedIndex:  n.fsm.Index(),
		LastContactMs: -1,
	}
	switch last := n.raft.LastContact(); {
	case state == raft.Leader:
		s.LastContactMs = 0
	case !last.IsZero():
		s.LastContactMs = time.Since(last).Milliseconds()
	}
	if state == raft.Shutdown {
		return s
	}
	if v, err := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64); err == nil {
		s.LastSnapshotIndex = v
	}
	if servers, err := n.Servers(); err == nil {
		s.Servers = servers
	}
	return s
}

// Servers returns the latest Raft configuration (possibly not yet
// committed).
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	cfg := f.Configuration()
	out := make([]Server, len(cfg.Servers))
	for i, s := range cfg.Servers {
		out[i] = Server{ID: string(s.ID), Address: string(s.Address), Suffrage: suffrage(s.Suffrage)}
	}
	return out, nil
}

func suffrage(s raft.ServerSuffrage) string {
	switch s {
	case raft.Voter:
		return SuffrageVoter
	case raft.Nonvoter:
		return SuffrageNonvoter
	case raft.Staging:
		return SuffrageStaging
	}
	return s.String()
}
