package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/raftvip/raftvip/daemon"
	"github.com/raftvip/raftvip/raftstore"
)

func TestPrintStatus(t *testing.T) {
	healthy := false
	st := daemon.RaftStatus{
		Status: raftstore.Status{Node: "cp1", State: "Follower", Term: 7, LastLogIndex: 12, CommitIndex: 11, AppliedIndex: 10, LastContactMs: 4,
			Leader:    raftstore.LeaderInfo{ID: "cp2", Address: "10.0.0.12:7950"},
			ClusterID: "6f1c2a9e-4b7d-4e0a-9c3b-2d5e8f1a7b64",
			Servers: []raftstore.StatusServer{
				{Server: raftstore.Server{ID: "cp1", Address: "10.0.0.11:7950", Suffrage: "voter"}, LastContactMs: 0},
				{Server: raftstore.Server{ID: "cp2", Address: "10.0.0.12:7950", Suffrage: "voter"}, LastContactMs: 4},
				{Server: raftstore.Server{ID: "cp3", Address: "10.0.0.13:7950", Suffrage: "staging"}, Promoting: true, LastContactMs: -1},
			}},
		APIServerHealthy: &healthy,
		HeldVIPs:         []string{"198.51.100.120"},
		BGPSessions:      []daemon.BGPSession{{Peer: "198.51.100.1", State: "established", UptimeSeconds: 90, PrefixesSent: 3}},
		Warnings:         []string{"this node's --pool flags differ"},
	}
	var b bytes.Buffer
	printStatus(&b, st)
	out := b.String()
	for _, want := range []string{"cp1", "Follower", "cp2 10.0.0.12:7950", "12 / 11 / 10", "4 ms", "198.51.100.120", "UNHEALTHY",
		"cluster id:", "6f1c2a9e-4b7d-4e0a-9c3b-2d5e8f1a7b64", "LAST CONTACT",
		"cp2     10.0.0.12:7950  voter                leader  4ms", "cp3     10.0.0.13:7950  staging (promoting)          -", "198.51.100.1", "established", "1m30s", "WARNING: this node's --pool flags differ"} {
		if !strings.Contains(out, want) {
			t.Errorf("status table lacks %q:\n%s", want, out)
		}
	}
}

// TestPrintStatusNamesAHalt: a halted node says so, with the entry, right under
// its state; a running one prints no such line.
func TestPrintStatusNamesAHalt(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, daemon.RaftStatus{Status: raftstore.Status{Node: "cp1", State: "Follower",
		Halted: &raftstore.Halt{Index: 42, Type: "unknown(14)", Reason: "unknown command type 14"}}})
	if out := b.String(); !strings.Contains(out, "HALTED:") || !strings.Contains(out, "halted at log index 42 (unknown(14)): unknown command type 14") {
		t.Fatalf("status of a halted node:\n%s", out)
	}
	b.Reset()
	printStatus(&b, daemon.RaftStatus{Status: raftstore.Status{Node: "cp1", State: "Follower"}})
	if strings.Contains(b.String(), "HALTED") {
		t.Fatalf("a running node prints a halt:\n%s", b.String())
	}
}
