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
	LastContactMs int64 `json:"last_contact_ms"`
	// ClusterID is the cluster this node belongs to (clusterid.go); "" for a
	// cluster bootstrapped before clusters had IDs, or a node not yet joined.
	ClusterID         string         `json:"cluster_id"`
	Servers           []StatusServer `json:"servers"`
	LastSnapshotIndex uint64         `json:"last_snapshot_index"`
	// Halted is set when the state machine stopped at an entry this binary
	// cannot decode (halt.go): the node applies and announces nothing.
	Halted *Halt `json:"halted,omitempty"`
	// Commands is what this binary can apply (versions.go).
	Commands []string `json:"commands"`
}

// StatusServer is one member as /raft/status shows it: its configuration entry
// and what this node knows of it.
type StatusServer struct {
	Server
	// Promoting is set on the leader for a nonvoter or staging server that the
	// membership code is promoting to voter (SetPromoting).
	Promoting bool `json:"promoting"`
	// Promotion, on the leader, is where a control-plane nonvoter stands on its
	// way to voter: "promoting", or "waiting: REASON" (catching up, or held for
	// an odd voter count); "" for voters and workers.
	Promotion string `json:"promotion,omitempty"`
	// LastContactMs is how long ago this node heard from the member: 0 for
	// itself; on the leader, the member's last answer (one that never answered
	// counts from the start of this leadership); on a follower, known only for
	// the leader; -1 when unknown.
	LastContactMs int64 `json:"last_contact_ms"`
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
		Halted:        n.fsm.Halted(),
		Commands:      Supported(),
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
	s.ClusterID = n.ClusterID()
	if servers, err := n.Servers(); err == nil {
		s.Servers = n.statusServers(servers, state == raft.Leader, id, s.LastContactMs, time.Now())
	}
	return s
}

// leaderSinceTime is when this node last became leader, on the monotonic
// clock, and whether it ever did.
func (n *Node) leaderSinceTime() (time.Time, bool) {
	ns := n.leaderSince.Load()
	return n.mux.epoch.Add(time.Duration(ns)), ns != 0
}

// statusServers adds promotion and last contact to the configuration.
func (n *Node) statusServers(servers []Server, leader bool, leaderID string, leaderContactMs int64, now time.Time) []StatusServer {
	var promoting func(string) bool
	if p := n.mux.promoting.Load(); p != nil {
		promoting = *p
	}
	var contacts map[string]time.Time
	since, led := n.leaderSinceTime()
	if leader {
		contacts = n.PeerContacts(servers)
	}
	out := make([]StatusServer, len(servers))
	for i, srv := range servers {
		ss := StatusServer{Server: srv, LastContactMs: -1}
		ss.Promoting = srv.Suffrage != SuffrageVoter && promoting != nil && promoting(srv.ID)
		if leader {
			ss.Promotion = promotionState(srv, ss.Promoting, n.mem.view.Load())
		}
		switch t, heard := contacts[srv.ID]; {
		case srv.ID == n.id:
			ss.LastContactMs = 0
		case leader && heard:
			ss.LastContactMs = now.Sub(t).Milliseconds()
		case leader && led:
			ss.LastContactMs = now.Sub(since).Milliseconds()
		case srv.ID == leaderID:
			ss.LastContactMs = leaderContactMs
		}
		out[i] = ss
	}
	return out
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
