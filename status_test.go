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
			Leader:  raftstore.LeaderInfo{ID: "cp2", Address: "10.0.0.12:7950"},
			Servers: []raftstore.Server{{ID: "cp1", Address: "10.0.0.11:7950", Suffrage: "voter"}, {ID: "cp2", Address: "10.0.0.12:7950", Suffrage: "voter"}}},
		APIServerHealthy: &healthy,
		HeldVIPs:         []string{"198.51.100.120"},
		BGPSessions:      []daemon.BGPSession{{Peer: "198.51.100.1", State: "established", UptimeSeconds: 90, PrefixesSent: 3}},
		Warnings:         []string{"this node's --pool flags differ"},
	}
	var b bytes.Buffer
	printStatus(&b, st)
	out := b.String()
	for _, want := range []string{"cp1", "Follower", "cp2 10.0.0.12:7950", "12 / 11 / 10", "4 ms", "198.51.100.120", "UNHEALTHY",
		"cp2     10.0.0.12:7950  voter     leader", "198.51.100.1", "established", "1m30s", "WARNING: this node's --pool flags differ"} {
		if !strings.Contains(out, want) {
			t.Errorf("status table lacks %q:\n%s", want, out)
		}
	}
}
