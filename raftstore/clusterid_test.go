package raftstore

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	idA = "6f1c2a9e-4b7d-4e0a-9c3b-2d5e8f1a7b64"
	idB = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
)

// TestFSMKeepsTheFirstClusterID: a fresh FSM has none; the first SetClusterID
// sets it, a later one (a second leader racing) changes nothing, and each apply
// tells the hook the committed ID.
func TestFSMKeepsTheFirstClusterID(t *testing.T) {
	f := NewFSM()
	var mu sync.Mutex
	var heard []string
	f.onClusterID = func(id string) { mu.Lock(); heard = append(heard, id); mu.Unlock() }
	mustApply(t, f, RemoveNode{Name: "x"})
	if f.State().ClusterID != "" || len(heard) != 0 {
		t.Fatalf("fresh FSM: id %q, hook heard %v", f.State().ClusterID, heard)
	}
	mustApply(t, f, SetClusterID{ID: idA}, SetClusterID{ID: idB})
	if got := f.State().ClusterID; got != idA {
		t.Fatalf("cluster id %q, want the first committed %q", got, idA)
	}
	if len(heard) != 2 || heard[0] != idA || heard[1] != idA {
		t.Fatalf("hook heard %v, want the committed id twice", heard)
	}
}

// TestFSMSnapshotCarriesTheClusterID: a restored FSM holds the ID, tells its hook,
// and a snapshot from before IDs existed restores without one.
func TestFSMSnapshotCarriesTheClusterID(t *testing.T) {
	src := NewFSM()
	mustApply(t, src, SetClusterID{ID: idA}, RemoveNode{Name: "x"})
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sink.String(), `"cluster_id":"`+idA+`"`) {
		t.Fatalf("snapshot lacks the cluster id: %s", sink.String())
	}
	dst := NewFSM()
	var heard string
	dst.onClusterID = func(id string) { heard = id }
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if got := dst.State().ClusterID; got != idA || heard != idA {
		t.Fatalf("restored id %q, hook heard %q, want %q", got, heard, idA)
	}
	old := NewFSM()
	old.onClusterID = func(id string) { t.Errorf("hook called with %q for a snapshot without id", id) }
	if err := old.Restore(io.NopCloser(strings.NewReader(`{"version":1,"state":{"pools":{}}}`))); err != nil {
		t.Fatal(err)
	}
	if old.State().ClusterID != "" {
		t.Fatalf("old snapshot restored with id %q", old.State().ClusterID)
	}
}

func TestBootstrapClusterID(t *testing.T) {
	peers := []Peer{{ID: "cp1", Address: "198.51.100.11:7950"}, {ID: "cp2", Address: "198.51.100.12:7950"}, {ID: "cp3", Address: "198.51.100.13:7950"}}
	shuffled := []Peer{peers[2], peers[0], peers[1]}
	a, err := bootstrapClusterID(peers)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := bootstrapClusterID(shuffled)
	if a != b {
		t.Fatalf("peers listed in another order derive %q, want %q", b, a)
	}
	if err := validClusterID(a); err != nil {
		t.Fatal(err)
	}
	other, _ := bootstrapClusterID([]Peer{peers[0], peers[1], {ID: "cp3", Address: "198.51.100.14:7950"}})
	if other == a {
		t.Fatalf("a different peer list derives the same id %q", a)
	}
	lone1, err1 := bootstrapClusterID(peers[:1])
	lone2, err2 := bootstrapClusterID(peers[:1])
	if err1 != nil || err2 != nil || lone1 == lone2 || validClusterID(lone1) != nil {
		t.Fatalf("lone bootstraps: %q %q (%v %v), want two distinct random ids", lone1, lone2, err1, err2)
	}
}

func TestReadClusterID(t *testing.T) {
	dir := t.TempDir()
	if id, err := ReadClusterID(dir); id != "" || err != nil {
		t.Fatalf("dir without file: %q %v", id, err)
	}
	if err := writeClusterID(dir, idA); err != nil {
		t.Fatal(err)
	}
	if id, err := ReadClusterID(dir); id != idA || err != nil {
		t.Fatalf("after write: %q %v", id, err)
	}
	path := filepath.Join(dir, clusterIDFile)
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadClusterID(dir); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("garbage file: %v, want an error naming %s", err, path)
	}
	// Open refuses such a dir with the same error.
	_, err := Open(Config{NodeID: "n1", BindAddr: freeAddr(t), DataDir: dir, Logger: testLogger()})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open with a garbage cluster id file: %v", err)
	}
}

func member(id, suffrage string, contactMs int64) StatusServer {
	return StatusServer{Server: Server{ID: id, Address: id + ":7950", Suffrage: suffrage}, LastContactMs: contactMs}
}

func TestMemberWarnings(t *testing.T) {
	const bound = 10 * time.Second
	cases := map[string]struct {
		servers []StatusServer
		want    []string
	}{
		"three live voters": {[]StatusServer{member("cp1", SuffrageVoter, 0), member("cp2", SuffrageVoter, 5), member("cp3", SuffrageVoter, 9000)}, nil},
		"one voter":         {[]StatusServer{member("cp1", SuffrageVoter, 0)}, nil},
		"no servers":        {nil, nil},
		"two voters": {[]StatusServer{member("cp1", SuffrageVoter, 0), member("cp2", SuffrageVoter, 3)},
			[]string{"2 voters is an even count: its quorum of 2 survives 0 voter(s) down, no more than 1 voters would"}},
		"four voters and a nonvoter": {[]StatusServer{member("cp1", SuffrageVoter, 0), member("cp2", SuffrageVoter, 3), member("cp3", SuffrageVoter, 3), member("cp4", SuffrageVoter, 3), member("w1", SuffrageNonvoter, 3)},
			[]string{"4 voters is an even count: its quorum of 3 survives 1 voter(s) down, no more than 3 voters would, and a network split into two halves leaves neither side a quorum"}},
		"staging does not count": {[]StatusServer{member("cp1", SuffrageVoter, 0), member("cp2", SuffrageStaging, 3)}, nil},
		"silent voter": {[]StatusServer{member("cp1", SuffrageVoter, 0), member("cp2", SuffrageVoter, 3), member("cp3", SuffrageVoter, 42_000)},
			[]string{"voter cp3 at cp3:7950 not heard from for 42s (more than 10s); if it is gone for good, remove it with raftvip members remove cp3"}},
		"at the bound is fine": {[]StatusServer{member("cp1", SuffrageVoter, 0), member("w1", SuffrageNonvoter, 10_000)}, nil},
		"silent worker":        {[]StatusServer{member("cp1", SuffrageVoter, 0), member("w1", SuffrageNonvoter, 10_001)}, []string{"nonvoter w1 at w1:7950 not heard from for 10s"}},
		"unknown never warns":  {[]StatusServer{member("cp1", SuffrageVoter, 0), member("cp2", SuffrageVoter, -1), member("cp3", SuffrageVoter, -1)}, nil},
		"even and silent": {[]StatusServer{member("cp1", SuffrageVoter, 0), member("cp2", SuffrageVoter, 60_000)},
			[]string{"2 voters is an even count", "voter cp2 at cp2:7950 not heard from for 1m0s"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := MemberWarnings(tc.servers, bound)
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d like %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("warning %d = %q, want it to start with %q", i, got[i], w)
				}
			}
		})
	}
}
