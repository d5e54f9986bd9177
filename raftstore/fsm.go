package raftstore

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// snapshotVersion is the version of the snapshot envelope. Restore refuses
// any other, like Decode refuses unknown command versions.
const snapshotVersion = 1

// snapshotEnvelope is what Persist writes and Restore reads.
type snapshotEnvelope struct {
	Version int   `json:"version"`
	State   State `json:"state"`
}

// FSM is the replicated state machine: a State behind a lock, changed only
// by committed log entries and snapshot restores. It is a thin view in the
// hraftd style: Snapshot copies the state under the lock and Persist only
// writes the copy, so Apply is never blocked by snapshot I/O.
type FSM struct {
	mu sync.RWMutex
	// state.AppliedIndex is the log index the state reflects: the last entry
	// handed to ApplyBatch, or the snapshot's index after Restore. raft's own
	// AppliedIndex runs ahead of it (it advances when a batch is queued), so
	// only this one says what a copy of the state contains.
	state    State
	changed  chan struct{}
	rejected atomic.Uint64
	// snapshotIndex names the index of the snapshot being restored: raft
	// restores only the newest snapshot in the store. Nil means unknown (0).
	snapshotIndex func() uint64
	// onClusterID hears the state's cluster ID after every apply and restore
	// that leaves one, so the node records it in its data dir. Nil: nobody.
	onClusterID func(id string)
	// halt is set at the first entry this node cannot decode (halt.go); onHalt
	// hears it once. Nil: applying.
	halt   *Halt
	onHalt func(Halt)
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// NewFSM returns an FSM holding an empty state.
func NewFSM() *FSM {
	return &FSM{state: NewState(), changed: make(chan struct{})}
}

// Apply implements raft.FSM. It returns nil when the command applied and
// the decode or validation error otherwise; the error is deterministic, so
// every node rejects the same entries and the states stay equal.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM: one lock and one change
// notification per batch of committed entries, which is what lets a burst of
// allocations go through quickly.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	resp := make([]any, len(logs))
	ops := make([]op, len(logs))
	f.mu.RLock()
	halted := f.halt != nil
	f.mu.RUnlock()
	var halt *Halt
	applied := len(logs)
	for i, l := range logs {
		if halted || halt != nil {
			resp[i] = fmt.Errorf("log index %d: %w", l.Index, ErrHalted)
			continue
		}
		if l.Type != raft.LogCommand {
			continue
		}
		c, err := Decode(l.Data)
		if h, ok := haltFor(l.Index, l.Data, err, time.Now()); ok {
			halt, applied = &h, i
			resp[i] = fmt.Errorf("log index %d: %w: %w", l.Index, ErrHalted, err)
			continue
		}
		if err != nil {
			f.rejected.Add(1)
			resp[i] = fmt.Errorf("log index %d: %w", l.Index, err)
			continue
		}
		ops[i] = c.(op)
	}
	if halted {
		return resp
	}
	f.mu.Lock()
	for _, o := range ops[:applied] {
		if o != nil {
			o.apply(&f.state)
		}
	}
	if applied > 0 {
		f.state.AppliedIndex = max(f.state.AppliedIndex, logs[applied-1].Index)
	}
	f.halt = halt
	if len(logs) > 0 {
		// Also for rejected and configuration entries: a reader waiting for
		// the state to reach an index must see the index move.
		f.broadcastLocked()
	}
	id := f.state.ClusterID
	f.mu.Unlock()
	f.noteClusterID(id)
	if halt != nil && f.onHalt != nil {
		f.onHalt(*halt)
	}
	return resp
}

// noteClusterID tells onClusterID about a non-empty ID; callers do not hold f.mu.
func (f *FSM) noteClusterID(id string) {
	if id != "" && f.onClusterID != nil {
		f.onClusterID(id)
	}
}

// clusterID is the committed cluster ID, without copying the state.
func (f *FSM) clusterID() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.ClusterID
}

// nodeCommands is every node's committed feature report (versions.go).
func (f *FSM) nodeCommands() map[string][]string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string][]string, len(f.state.Nodes))
	for name, info := range f.state.Nodes {
		out[name] = info.Commands
	}
	return out
}

// broadcastLocked wakes everyone waiting on Changed. Callers hold f.mu.
func (f *FSM) broadcastLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// State returns a deep copy of the current state; its AppliedIndex says which
// log index the copy reflects.
func (f *FSM) State() State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Clone()
}

// Index is the log index the state reflects, without copying the state; the
// status endpoint and metrics report it as the applied index because raft's
// own counter runs ahead of what the FSM holds.
func (f *FSM) Index() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.AppliedIndex
}

// Changed returns a channel that is closed at the next applied change or
// restore. Callers wait on it, then call Changed again and re-read State;
// changes between reads coalesce, never get lost.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// Rejected counts log entries this FSM refused to apply.
func (f *FSM) Rejected() uint64 { return f.rejected.Load() }

// sizes reports map sizes for metrics without copying the state.
func (f *FSM) sizes() (pools, allocations, owners, nodes int) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.state.Pools), len(f.state.Allocations), len(f.state.Owners), len(f.state.Nodes)
}

// Snapshot implements raft.FSM by copying the state; the copy is written
// later by Persist, concurrently with further Applies.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if h := f.Halted(); h != nil {
		return nil, fmt.Errorf("snapshot: %w: %s", ErrHalted, h)
	}
	return &fsmSnapshot{state: f.State()}, nil
}

// Restore implements raft.FSM: it replaces the whole state with the
// snapshot's and wakes Changed waiters.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if h := f.Halted(); h != nil {
		return fmt.Errorf("restore snapshot: %w: %s", ErrHalted, h)
	}
	var env snapshotEnvelope
	dec := json.NewDecoder(rc)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if env.Version != snapshotVersion {
		return fmt.Errorf("restore snapshot: unknown snapshot version %d (this node understands %d)", env.Version, snapshotVersion)
	}
	env.State.normalize()
	var idx uint64
	if f.snapshotIndex != nil {
		idx = f.snapshotIndex()
	}
	f.mu.Lock()
	f.state = env.State
	f.state.AppliedIndex = idx
	f.broadcastLocked()
	f.mu.Unlock()
	f.noteClusterID(env.State.ClusterID)
	return nil
}

// fsmSnapshot is a point-in-time copy of the state waiting to be persisted.
type fsmSnapshot struct {
	state State
}

// Persist implements raft.FSMSnapshot.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	err := json.NewEncoder(sink).Encode(snapshotEnvelope{Version: snapshotVersion, State: s.state})
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("persist snapshot: close sink: %w", err)
	}
	return nil
}

// Release implements raft.FSMSnapshot; the copy needs no cleanup.
func (s *fsmSnapshot) Release() {}
