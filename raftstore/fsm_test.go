package raftstore

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// applyCmd encodes c and applies it to f as the next log entry.
func applyCmd(t *testing.T, f *FSM, index uint64, c Command) error {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatalf("Encode %s: %v", c.Type(), err)
	}
	return applyRaw(f, index, b)
}

func applyRaw(f *FSM, index uint64, b []byte) error {
	resp := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: b})
	if resp == nil {
		return nil
	}
	return resp.(error)
}

func mustApply(t *testing.T, f *FSM, cmds ...Command) {
	t.Helper()
	for i, c := range cmds {
		if err := applyCmd(t, f, uint64(i+1), c); err != nil {
			t.Fatalf("apply %s: %v", c.Type(), err)
		}
	}
}

func TestFSMAppliesEveryCommand(t *testing.T) {
	f := NewFSM()
	p1 := Pool{Name: "a", Ranges: []string{"198.51.100.100/30"}, AutoAssign: true}
	p2 := Pool{Name: "b", Ranges: []string{"2001:db8:100::/126"}}
	mustApply(t, f, SetPools{Pools: []Pool{p1, p2}})
	if got := f.State().Pools; !reflect.DeepEqual(got, map[string]Pool{"a": p1, "b": p2}) {
		t.Fatalf("pools after SetPools = %#v", got)
	}
	mustApply(t, f, SetPools{Pools: []Pool{p2}})
	if got := f.State().Pools; !reflect.DeepEqual(got, map[string]Pool{"b": p2}) {
		t.Fatalf("SetPools did not replace the set: %#v", got)
	}

	a := Allocation{Service: "ns/web", UID: "u1", Pool: "b", IPs: []string{"2001:db8:100::1"}, Ports: []string{"TCP/443"}}
	mustApply(t, f, Allocate{Allocation: a})
	a2 := a
	a2.UID, a2.IPs = "u2", []string{"2001:db8:100::2"}
	mustApply(t, f, Allocate{Allocation: a2})
	if got := f.State().Allocations; !reflect.DeepEqual(got, map[string]Allocation{"ns/web": a2}) {
		t.Fatalf("Allocate did not upsert by service: %#v", got)
	}
	mustApply(t, f, Release{Service: "ns/web"}, Release{Service: "ns/absent"})
	if got := f.State().Allocations; len(got) != 0 {
		t.Fatalf("Release left %#v", got)
	}

	mustApply(t, f, SetOwner{VIP: "198.51.100.100", Node: "cp1", Service: "ns/web"})
	want := Owner{VIP: "198.51.100.100", Node: "cp1", Epoch: 1, Service: "ns/web"}
	if got := f.State().Owners["198.51.100.100"]; got != want {
		t.Fatalf("owner = %#v, want %#v", got, want)
	}
	mustApply(t, f, RemoveOwner{VIP: "198.51.100.100"})
	if got := f.State().Owners; len(got) != 0 {
		t.Fatalf("RemoveOwner left %#v", got)
	}

	n := NodeInfo{Name: "cp1", Address: "198.51.100.11:7950", Role: RoleVoter, InterfaceUp: true, Pools: []Pool{p1}}
	mustApply(t, f, ReportNode{Node: n})
	if got := f.State().Nodes["cp1"]; !reflect.DeepEqual(got, n) {
		t.Fatalf("node = %#v, want %#v", got, n)
	}
	mustApply(t, f, RemoveNode{Name: "cp1"})
	if got := f.State().Nodes; len(got) != 0 {
		t.Fatalf("RemoveNode left %#v", got)
	}

	mustApply(t, f, SetAdvertisers{VIP: "198.51.100.100", Nodes: []string{"cp3", "cp1", "cp3"}})
	if got := f.State().Advertisers["198.51.100.100"]; !reflect.DeepEqual(got, []string{"cp1", "cp3"}) {
		t.Fatalf("advertisers = %v, want sorted and unique [cp1 cp3]", got)
	}
	mustApply(t, f, SetAdvertisers{VIP: "198.51.100.100"})
	if got := f.State().Advertisers; len(got) != 0 {
		t.Fatalf("empty SetAdvertisers left %#v", got)
	}
}

func TestFSMEpochIncrementsPerVIP(t *testing.T) {
	f := NewFSM()
	mustApply(t, f,
		SetOwner{VIP: "198.51.100.100", Node: "cp1"},
		SetOwner{VIP: "198.51.100.101", Node: "cp1"},
		SetOwner{VIP: "198.51.100.100", Node: "cp2"},
		SetOwner{VIP: "198.51.100.100", Node: "cp3"},
	)
	st := f.State()
	if got := st.Owners["198.51.100.100"]; got.Epoch != 3 || got.Node != "cp3" {
		t.Errorf("moved VIP = %#v, want epoch 3 on cp3", got)
	}
	if got := st.Owners["198.51.100.101"]; got.Epoch != 1 || got.Node != "cp1" {
		t.Errorf("other VIP = %#v, want epoch 1 on cp1", got)
	}
	// Withdrawn and announced again: the epoch keeps growing.
	mustApply(t, f, RemoveOwner{VIP: "198.51.100.100"}, SetOwner{VIP: "198.51.100.100", Node: "cp1"})
	if got := f.State().Owners["198.51.100.100"]; got.Epoch != 4 {
		t.Errorf("re-announced VIP = %#v, want epoch 4", got)
	}
}

func TestFSMAPIServerEverHealthyIsSticky(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, ReportNode{Node: NodeInfo{Name: "cp1", Role: RoleVoter}})
	if f.State().APIServerEverHealthy {
		t.Fatal("set without any healthy report")
	}
	mustApply(t, f,
		ReportNode{Node: NodeInfo{Name: "cp1", Role: RoleVoter, APIServerHealthy: true}},
		ReportNode{Node: NodeInfo{Name: "cp1", Role: RoleVoter, APIServerHealthy: false}},
		RemoveNode{Name: "cp1"},
	)
	if !f.State().APIServerEverHealthy {
		t.Fatal("APIServerEverHealthy went back to false")
	}
}

func TestFSMBatchAppliesInOrder(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, Batch{Commands: []Command{
		Allocate{Allocation: Allocation{Service: "ns/a", Pool: "p", IPs: []string{"198.51.100.100"}}},
		SetOwner{VIP: "198.51.100.100", Node: "cp1"},
		SetOwner{VIP: "198.51.100.100", Node: "cp2"},
		Release{Service: "ns/a"},
		Allocate{Allocation: Allocation{Service: "ns/a", UID: "second", Pool: "p"}},
	}})
	st := f.State()
	if got := st.Owners["198.51.100.100"]; got.Node != "cp2" || got.Epoch != 2 {
		t.Errorf("owner = %#v, want cp2 at epoch 2", got)
	}
	if got := st.Allocations["ns/a"]; got.UID != "second" {
		t.Errorf("allocation = %#v, want the one allocated last", got)
	}
}

func TestFSMBatchIsAtomic(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, SetOwner{VIP: "198.51.100.100", Node: "cp1"})
	before := f.State()
	changed := f.Changed()
	// A batch whose last command is invalid, written around Encode's check.
	body := `{"commands":[` +
		`{"type":4,"body":{"vip":"198.51.100.100","node":"cp2"}},` +
		`{"type":7,"body":{"name":""}}]}`
	err := applyRaw(f, 2, append([]byte{FormatVersion, byte(TypeBatch)}, body...))
	if !errors.Is(err, ErrInvalidCommand) || !strings.Contains(err.Error(), "log index 2") {
		t.Fatalf("error = %v, want ErrInvalidCommand naming the log index", err)
	}
	if got := f.State(); !statesEqual(got, before) {
		t.Fatalf("state changed by a rejected batch:\n got %#v\nwant %#v", got, before)
	}
	// The state stays, but its index moves past the rejected entry.
	select {
	case <-changed:
	default:
		t.Fatal("Changed did not fire when a rejected batch moved the index")
	}
	if idx := f.State().AppliedIndex; idx != 2 {
		t.Fatalf("index = %d, want 2", idx)
	}
	if f.Rejected() != 1 {
		t.Fatalf("Rejected = %d, want 1", f.Rejected())
	}
}

// TestFSMRejectsUnknownVersionAndType: an entry of a newer release halts the
// FSM with an error naming what it did not know, and changes nothing.
func TestFSMRejectsUnknownVersionAndType(t *testing.T) {
	cases := []struct {
		b    []byte
		want string
	}{
		{append([]byte{9, byte(TypeRelease)}, `{"service":"a/b"}`...), "unknown format version 9"},
		{append([]byte{FormatVersion, 250}, `{}`...), "unknown command type 250"},
	}
	for _, tc := range cases {
		f := NewFSM()
		err := applyRaw(f, 1, tc.b)
		if !errors.Is(err, ErrInvalidCommand) || !errors.Is(err, ErrHalted) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error = %v, want one naming %q", err, tc.want)
		}
		if got := f.State(); !statesEqual(got, NewState()) {
			t.Fatalf("state changed: %#v", got)
		}
	}
}

func TestFSMIgnoresNonCommandEntriesButCountsTheirIndex(t *testing.T) {
	f := NewFSM()
	before := f.State()
	changed := f.Changed()
	resp := f.ApplyBatch([]*raft.Log{{Index: 1, Type: raft.LogConfiguration, Data: []byte("not a command")}})
	if len(resp) != 1 || resp[0] != nil {
		t.Fatalf("response = %#v", resp)
	}
	st := f.State()
	idx := st.AppliedIndex
	st.AppliedIndex = before.AppliedIndex
	if !reflect.DeepEqual(st, before) {
		t.Fatalf("a configuration entry changed the state: %#v", st)
	}
	if idx != 1 {
		t.Fatalf("index = %d after a configuration entry at 1, want 1", idx)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Changed did not fire when the index moved")
	}
}

func TestFSMIndexFollowsEveryEntry(t *testing.T) {
	good, err := Encode(SetOwner{VIP: "198.51.100.100", Node: "cp1"})
	if err != nil {
		t.Fatal(err)
	}
	bad := []byte(string([]byte{FormatVersion, byte(TypeRemoveNode)}) + `{"name":""}`)
	unknown := []byte{FormatVersion, 99}
	tests := []struct {
		name  string
		batch []*raft.Log
		want  uint64
	}{
		{"empty batch", nil, 0},
		{"one command", []*raft.Log{{Index: 3, Type: raft.LogCommand, Data: good}}, 3},
		{"rejected last", []*raft.Log{{Index: 3, Type: raft.LogCommand, Data: good}, {Index: 4, Type: raft.LogCommand, Data: bad}}, 4},
		{"halted last", []*raft.Log{{Index: 3, Type: raft.LogCommand, Data: good}, {Index: 4, Type: raft.LogCommand, Data: unknown}}, 3},
		{"configuration last", []*raft.Log{{Index: 5, Type: raft.LogCommand, Data: good}, {Index: 7, Type: raft.LogConfiguration}}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFSM()
			f.ApplyBatch(tt.batch)
			if got := f.State().AppliedIndex; got != tt.want {
				t.Fatalf("index = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestFSMIndexNeverGoesBackOnApply(t *testing.T) {
	f := NewFSM()
	if err := applyCmd(t, f, 9, RemoveNode{Name: "ghost"}); err != nil {
		t.Fatal(err)
	}
	if err := applyCmd(t, f, 8, RemoveNode{Name: "ghost"}); err != nil {
		t.Fatal(err)
	}
	if idx := f.State().AppliedIndex; idx != 9 {
		t.Fatalf("index = %d, want 9", idx)
	}
}

func TestFSMRestoreTakesTheSnapshotIndex(t *testing.T) {
	for _, tt := range []struct {
		name  string
		index func() uint64
		want  uint64
	}{
		{"known snapshot", func() uint64 { return 42 }, 42},
		{"no snapshot store", nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFSM()
			f.snapshotIndex = tt.index
			if err := applyCmd(t, f, 100, RemoveNode{Name: "ghost"}); err != nil {
				t.Fatal(err)
			}
			if err := f.Restore(io.NopCloser(strings.NewReader(`{"version":1,"state":{}}`))); err != nil {
				t.Fatal(err)
			}
			if idx := f.State().AppliedIndex; idx != tt.want {
				t.Fatalf("index after restore = %d, want %d", idx, tt.want)
			}
		})
	}
}

func TestFSMApplyBatchMixesGoodAndBad(t *testing.T) {
	f := NewFSM()
	good, err := Encode(SetOwner{VIP: "198.51.100.100", Node: "cp1"})
	if err != nil {
		t.Fatal(err)
	}
	resp := f.ApplyBatch([]*raft.Log{
		{Index: 1, Type: raft.LogCommand, Data: good},
		{Index: 2, Type: raft.LogCommand, Data: []byte(string([]byte{FormatVersion, byte(TypeRemoveNode)}) + `{"name":""}`)},
		{Index: 3, Type: raft.LogCommand, Data: good},
	})
	if resp[0] != nil || resp[2] != nil {
		t.Fatalf("good entries rejected: %#v", resp)
	}
	if err, ok := resp[1].(error); !ok || !errors.Is(err, ErrInvalidCommand) {
		t.Fatalf("bad entry response = %#v", resp[1])
	}
	if got := f.State().Owners["198.51.100.100"].Epoch; got != 2 {
		t.Fatalf("epoch = %d, want 2 (both good entries applied)", got)
	}
}

func TestFSMChangedBroadcasts(t *testing.T) {
	f := NewFSM()
	first := f.Changed()
	if first != f.Changed() {
		t.Fatal("Changed returned a new channel without a change")
	}
	mustApply(t, f, RemoveNode{Name: "ghost"})
	select {
	case <-first:
	default:
		t.Fatal("Changed not closed after an applied command")
	}
	second := f.Changed()
	if second == first {
		t.Fatal("Changed not replaced after firing")
	}
	select {
	case <-second:
		t.Fatal("new Changed channel already closed")
	default:
	}
	if err := f.Restore(io.NopCloser(strings.NewReader(`{"version":1,"state":{}}`))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second:
	default:
		t.Fatal("Changed not closed after Restore")
	}
}

func TestFSMStateIsACopy(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, SetPools{Pools: []Pool{{Name: "a", Ranges: []string{"198.51.100.0/24"}}}})
	st := f.State()
	st.Pools["a"].Ranges[0] = "mutated"
	st.Pools["b"] = Pool{Name: "b"}
	if got := f.State().Pools; len(got) != 1 || got["a"].Ranges[0] != "198.51.100.0/24" {
		t.Fatalf("caller's mutation leaked into the FSM: %#v", got)
	}
}

// memSink is a raft.SnapshotSink over a buffer.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

func richState(t *testing.T) *FSM {
	t.Helper()
	f := NewFSM()
	for _, c := range sampleCommands() {
		if c.Type() == TypeRelease || c.Type() == TypeRemoveOwner || c.Type() == TypeRemoveNode {
			continue
		}
		mustApply(t, f, c)
	}
	mustApply(t, f,
		ReportNode{Node: NodeInfo{Name: "cp2", Role: RoleVoter, Address: "198.51.100.12:7950"}},
		Allocate{Allocation: Allocation{Service: "ns/empty", Pool: "manual"}},
	)
	return f
}

func TestFSMSnapshotRestoreRoundTrip(t *testing.T) {
	src := richState(t)
	want := src.State()
	if len(want.Pools) == 0 || len(want.Allocations) < 2 || len(want.Owners) == 0 || len(want.Nodes) < 2 || !want.APIServerEverHealthy || len(want.Advertisers) == 0 || want.LBClass == nil || want.ClusterID == "" {
		t.Fatalf("test state is not rich enough: %#v", want)
	}
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Changes after Snapshot must not leak into the persisted copy.
	mustApply(t, src, RemoveNode{Name: "cp2"})
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v", sink.closed, sink.cancelled)
	}

	dst := NewFSM()
	mustApply(t, dst, SetOwner{VIP: "198.51.100.250", Node: "stale"})
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if got := dst.State(); !statesEqual(got, want) {
		t.Fatalf("restored state differs:\n got %#v\nwant %#v", got, want)
	}

	// Snapshot of the restored FSM is byte-identical: nothing drifts.
	snap2, err := dst.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink2 memSink
	if err := snap2.Persist(&sink2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sink.Bytes(), sink2.Bytes()) {
		t.Fatalf("second snapshot differs:\n%s\n%s", sink.Bytes(), sink2.Bytes())
	}
}

func TestFSMRestoreEmptySnapshot(t *testing.T) {
	var sink memSink
	snap, err := NewFSM().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	f := richState(t)
	if err := f.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	if got := f.State(); !statesEqual(got, NewState()) {
		t.Fatalf("restore of empty snapshot left %#v", got)
	}
}

func TestFSMRestoreRejectsBadSnapshots(t *testing.T) {
	cases := map[string]string{
		"garbage":         "not json",
		"unknown version": `{"version":2,"state":{}}`,
		"unknown field":   `{"version":1,"state":{},"extra":1}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			f := richState(t)
			before := f.State()
			if err := f.Restore(io.NopCloser(strings.NewReader(body))); err == nil {
				t.Fatal("Restore accepted it")
			}
			if got := f.State(); !statesEqual(got, before) {
				t.Fatal("failed restore changed the state")
			}
		})
	}
}

type failingSink struct{ memSink }

func (s *failingSink) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestFSMPersistCancelsOnWriteError(t *testing.T) {
	snap, err := richState(t).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink failingSink
	if err := snap.Persist(&sink); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Persist error = %v", err)
	}
	if !sink.cancelled || sink.closed {
		t.Fatalf("sink cancelled=%v closed=%v, want cancelled only", sink.cancelled, sink.closed)
	}
}

func TestStateCloneIsDeep(t *testing.T) {
	s := richState(t).State()
	c := s.Clone()
	if !reflect.DeepEqual(s, c) {
		t.Fatal("clone differs")
	}
	for k, a := range c.Allocations {
		if len(a.IPs) > 0 {
			a.IPs[0] = "changed"
			if s.Allocations[k].IPs[0] == "changed" {
				t.Fatal("allocation IPs shared")
			}
		}
	}
	for k, n := range c.Nodes {
		if len(n.Pools) > 0 {
			n.Pools[0].Ranges[0] = "changed"
			if s.Nodes[k].Pools[0].Ranges[0] == "changed" {
				t.Fatal("node pools shared")
			}
		}
	}
	if got := (State{}).Clone(); got.Pools == nil || got.Allocations == nil || got.Owners == nil || got.Nodes == nil {
		t.Fatalf("clone of zero State has nil maps: %#v", got)
	}
}

// TestFSMLBClass: nothing is committed until the first SetLBClass; the empty class
// is a value of its own, and State hands out a copy.
func TestFSMLBClass(t *testing.T) {
	f := NewFSM()
	if f.State().LBClass != nil {
		t.Fatal("a fresh FSM has a class")
	}
	mustApply(t, f, SetLBClass{Class: ""})
	if got := f.State().LBClass; got == nil || *got != "" {
		t.Fatalf("class after committing the empty class: %v", got)
	}
	mustApply(t, f, SetLBClass{Class: "example.com/raftvip"})
	st := f.State()
	*st.LBClass = "mutated"
	if got := f.State().LBClass; got == nil || *got != "example.com/raftvip" {
		t.Fatalf("class %v, want example.com/raftvip (unchanged by the caller)", got)
	}
}

func TestFSMStateCarriesItsOwnIndex(t *testing.T) {
	// Entry i moves the VIP for the i-th time, so a copy whose epoch and index
	// disagree was read half-way between a change and its index.
	f := NewFSM()
	const n = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(1); i <= n; i++ {
			if err := applyCmd(t, f, i, SetOwner{VIP: "198.51.100.100", Node: "cp1"}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for {
		st := f.State()
		if got := st.Owners["198.51.100.100"].Epoch; got != st.AppliedIndex {
			t.Fatalf("copy at index %d holds epoch %d", st.AppliedIndex, got)
		}
		if st.AppliedIndex == n {
			break
		}
	}
	<-done
}

func TestCloneKeepsAppliedIndex(t *testing.T) {
	for _, idx := range []uint64{0, 1, 1 << 40} {
		s := NewState()
		s.AppliedIndex = idx
		if got := s.Clone().AppliedIndex; got != idx {
			t.Errorf("Clone of a state at %d is at %d", idx, got)
		}
	}
}

func TestSnapshotRestoreSetsAppliedIndexNotFromTheBody(t *testing.T) {
	// The index is the snapshot's, never a number in the JSON body: an old body
	// has none and a new one must not be trusted over raft's metadata.
	src := NewFSM()
	if err := applyCmd(t, src, 7, SetOwner{VIP: "198.51.100.100", Node: "cp1"}); err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sink.String(), "applied") {
		t.Fatalf("snapshot body carries the applied index: %s", sink.String())
	}
	dst := NewFSM()
	dst.snapshotIndex = func() uint64 { return 7 }
	if err := dst.Restore(io.NopCloser(strings.NewReader(sink.String()))); err != nil {
		t.Fatal(err)
	}
	st := dst.State()
	if st.AppliedIndex != 7 || st.Owners["198.51.100.100"].Node != "cp1" {
		t.Fatalf("restored copy at %d with owners %v, want index 7 and cp1", st.AppliedIndex, st.Owners)
	}
}

func TestFSMLookupsReadTheLatestState(t *testing.T) {
	f := NewFSM()
	if _, ok := f.Owner("198.51.100.100"); ok {
		t.Fatal("owner in an empty state")
	}
	steps := []Command{
		SetOwner{VIP: "198.51.100.100", Node: "cp1"},
		SetAdvertisers{VIP: "198.51.100.101", Nodes: []string{"cp1", "cp2"}},
		SetOwner{VIP: "198.51.100.100", Node: "cp2"},
	}
	for i, c := range steps {
		if err := applyCmd(t, f, uint64(i+1), c); err != nil {
			t.Fatal(err)
		}
	}
	if o, ok := f.Owner("198.51.100.100"); !ok || o.Node != "cp2" || o.Epoch != 2 {
		t.Errorf("owner = %+v %v, want cp2 at epoch 2", o, ok)
	}
	for _, tc := range []struct {
		vip, node string
		want      bool
	}{
		{"198.51.100.101", "cp1", true},
		{"198.51.100.101", "cp3", false},
		{"198.51.100.100", "cp2", false},
	} {
		if got := f.Advertises(tc.vip, tc.node); got != tc.want {
			t.Errorf("Advertises(%s, %s) = %v, want %v", tc.vip, tc.node, got, tc.want)
		}
	}
}
