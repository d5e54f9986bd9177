package raftstore

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func encoded(t *testing.T, c Command) []byte {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHaltFor(t *testing.T) {
	now := time.Unix(100, 0)
	unknownField := []byte(string([]byte{FormatVersion, byte(TypeReportNode)}) + `{"node":{"name":"a","address":"x","role":"voter","new_field":1}}`)
	cases := map[string]struct {
		data     []byte
		halts    bool
		typeName string
	}{
		"unknown type":            {[]byte{FormatVersion, 99, '{', '}'}, true, "unknown(99)"},
		"unknown format version":  {[]byte{FormatVersion + 1, byte(TypeRelease), '{', '}'}, true, "release"},
		"unknown field":           {unknownField, true, "report_node"},
		"unknown type in a batch": {[]byte(string([]byte{FormatVersion, byte(TypeBatch)}) + `{"commands":[{"type":99,"body":{}}]}`), true, "batch"},
		"invalid, not unknown":    {[]byte(string([]byte{FormatVersion, byte(TypeRemoveNode)}) + `{"name":""}`), false, ""},
		"malformed body":          {[]byte{FormatVersion, byte(TypeRelease), '{'}, false, ""},
		"too short":               {[]byte{FormatVersion}, false, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(tc.data)
			if err == nil {
				t.Fatal("decoded")
			}
			h, halts := haltFor(7, tc.data, err, now)
			if halts != tc.halts {
				t.Fatalf("halts %v, want %v (err %v)", halts, tc.halts, err)
			}
			if halts && (h.Index != 7 || h.Type != tc.typeName || !h.Since.Equal(now) || h.Reason == "") {
				t.Fatalf("halt %+v", h)
			}
		})
	}
}

// TestFSMHaltsAtAnEntryItCannotDecode: the entries before it apply, it and
// everything after it do not, and the FSM takes and restores no snapshot.
func TestFSMHaltsAtAnEntryItCannotDecode(t *testing.T) {
	f := NewFSM()
	var heard []Halt
	f.onHalt = func(h Halt) { heard = append(heard, h) }
	resp := f.ApplyBatch([]*raft.Log{
		{Index: 1, Type: raft.LogCommand, Data: encoded(t, SetOwner{VIP: "198.51.100.100", Node: "a"})},
		{Index: 2, Type: raft.LogCommand, Data: []byte{FormatVersion, 99, '{', '}'}},
		{Index: 3, Type: raft.LogCommand, Data: encoded(t, SetOwner{VIP: "198.51.100.101", Node: "a"})},
	})
	if resp[0] != nil {
		t.Fatalf("entry 1: %v", resp[0])
	}
	for i := 1; i < 3; i++ {
		if err, _ := resp[i].(error); !errors.Is(err, ErrHalted) {
			t.Fatalf("entry %d: %v, want ErrHalted", i+1, resp[i])
		}
	}
	st := f.State()
	if len(st.Owners) != 1 || st.AppliedIndex != 1 {
		t.Fatalf("owners %v at index %d, want only the first at 1", st.Owners, st.AppliedIndex)
	}
	h := f.Halted()
	if h == nil || h.Index != 2 || h.Type != "unknown(99)" || len(heard) != 1 {
		t.Fatalf("halt %+v, heard %v", h, heard)
	}
	if !strings.Contains(h.String(), "log index 2 (unknown(99))") {
		t.Fatalf("halt line %q", h)
	}
	if err := applyCmd(t, f, 4, RemoveOwner{VIP: "198.51.100.100"}); !errors.Is(err, ErrHalted) {
		t.Fatalf("apply after halt: %v", err)
	}
	if got := f.State(); len(got.Owners) != 1 || got.AppliedIndex != 1 || len(heard) != 1 {
		t.Fatalf("after halt: owners %v index %d heard %d", got.Owners, got.AppliedIndex, len(heard))
	}
	if _, err := f.Snapshot(); !errors.Is(err, ErrHalted) {
		t.Fatalf("snapshot: %v", err)
	}
	if err := f.Restore(io.NopCloser(strings.NewReader(`{"version":1,"state":{}}`))); !errors.Is(err, ErrHalted) {
		t.Fatalf("restore: %v", err)
	}
}

// TestFSMRejectsInvalidWithoutHalting: an invalid command of a known type is
// rejected the same way by every node, so the FSM applies on.
func TestFSMRejectsInvalidWithoutHalting(t *testing.T) {
	f := NewFSM()
	bad := []byte(string([]byte{FormatVersion, byte(TypeRemoveNode)}) + `{"name":""}`)
	if err := applyRaw(f, 1, bad); err == nil || errors.Is(err, ErrHalted) {
		t.Fatalf("invalid entry: %v", err)
	}
	if err := applyCmd(t, f, 2, SetOwner{VIP: "198.51.100.100", Node: "a"}); err != nil {
		t.Fatal(err)
	}
	if f.Halted() != nil || f.Rejected() != 1 || len(f.State().Owners) != 1 {
		t.Fatalf("halted %v rejected %d", f.Halted(), f.Rejected())
	}
}
