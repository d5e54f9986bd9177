package raftstore

import (
	"errors"
	"fmt"
	"time"
)

// A node that meets an entry it cannot decode was outrun by a newer release:
// the writer could decode it, so skipping it would leave this node with another
// state than the others. The FSM halts instead: it applies nothing from that
// entry on, takes no snapshot (one would claim indexes it never applied) and
// restores none, until the node restarts with a binary that can decode it.

// ErrHalted is returned for every entry after the FSM halted, and by Apply,
// Snapshot and Restore on a halted node.
var ErrHalted = errors.New("state machine halted on an entry it cannot decode")

// Halt says where and why the FSM stopped applying.
type Halt struct {
	// Index and Type name the entry this node could not decode.
	Index uint64 `json:"index"`
	Type  string `json:"type"`
	// Reason is the decode error.
	Reason string `json:"reason"`
	// Since is when the FSM halted.
	Since time.Time `json:"since"`
}

// String is the one line operators see in status.
func (h Halt) String() string {
	return fmt.Sprintf("halted at log index %d (%s): %s", h.Index, h.Type, h.Reason)
}

// haltFor decides whether a decode error halts the FSM: only entries of a newer
// release do; invalid commands are rejected the same way by every node.
func haltFor(index uint64, data []byte, err error, now time.Time) (Halt, bool) {
	if !errors.Is(err, ErrUnknownCommand) {
		return Halt{}, false
	}
	typ := "none"
	if len(data) >= 2 {
		typ = CommandType(data[1]).String()
	}
	return Halt{Index: index, Type: typ, Reason: err.Error(), Since: now}, true
}

// Halted returns where the FSM stopped applying, or nil while it applies.
func (f *FSM) Halted() *Halt {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.halt == nil {
		return nil
	}
	h := *f.halt
	return &h
}

// Halted returns where this node's state machine stopped applying, or nil.
// A halted node must announce nothing: its state is behind for good.
func (n *Node) Halted() *Halt { return n.fsm.Halted() }

// noteHalt logs the halt once, loudly, and hands leadership away: a leader
// that cannot apply cannot decide.
func (n *Node) noteHalt(h Halt) {
	n.logger.Error("state machine halted: a log entry this binary cannot decode; nothing more is applied or announced until the node runs a release that can",
		"index", h.Index, "type", h.Type, "err", h.Reason)
	if n.raft != nil && n.IsLeader() {
		go func() {
			if err := n.raft.LeadershipTransfer().Error(); err != nil {
				n.logger.Error("halted leader could not hand leadership over", "err", err)
			}
		}()
	}
}
