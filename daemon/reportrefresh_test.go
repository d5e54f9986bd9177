package daemon

import (
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

func TestReportRefresh(t *testing.T) {
	full := raftstore.NodeInfo{Name: "n1", Commands: raftstore.Supported(), Interfaces: []raftstore.LinkState{{Name: "eth0", Up: true}}}
	noCommands := full
	noCommands.Commands = nil
	noLinks := full
	noLinks.Interfaces = nil
	for _, tc := range []struct {
		name               string
		committed          raftstore.NodeInfo
		found, sendsLinks  bool
		leader, lastLeader string
		want               string
	}{
		{"no report committed yet: the start loops send the first", raftstore.NodeInfo{}, false, true, "n2", "", ""},
		{"no leader: nobody to send to", noCommands, true, true, "", "n2", ""},
		{"complete, same leader", full, true, true, "n2", "n2", ""},
		{"first leader seen", full, true, true, "n2", "", refreshLeaderChanged},
		{"leader changed", full, true, true, "n3", "n2", refreshLeaderChanged},
		{"leader changed and incomplete: the leader change is enough", noCommands, true, true, "n3", "n2", refreshLeaderChanged},
		{"feature list stripped by the gate", noCommands, true, true, "n2", "n2", refreshIncomplete},
		{"interfaces stripped by the gate", noLinks, true, true, "n2", "n2", refreshIncomplete},
		{"no interfaces sent (bgp mode): none missing", noLinks, true, false, "n2", "n2", ""},
		{"feature list stripped, bgp mode", noCommands, true, false, "n2", "n2", refreshIncomplete},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := reportRefresh(tc.committed, tc.found, tc.sendsLinks, tc.leader, tc.lastLeader); got != tc.want {
				t.Errorf("reportRefresh = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRefreshBackoff(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var b refreshBackoff
	steps := []struct {
		at         time.Duration
		incomplete bool
		want       bool
	}{
		{0, true, true},                       // first: at once
		{500 * time.Millisecond, true, false}, // within 1 s
		{time.Second, true, true},             // then wait 2 s
		{2 * time.Second, true, false},
		{3 * time.Second, true, true}, // then 4 s
		{6 * time.Second, true, false},
		{7 * time.Second, true, true},
		{7500 * time.Millisecond, false, false}, // complete: reset
		{7600 * time.Millisecond, true, true},   // incomplete again: at once
		{8 * time.Second, true, false},
	}
	for i, s := range steps {
		if got := b.due(s.incomplete, t0.Add(s.at)); got != s.want {
			t.Fatalf("step %d at %s (incomplete %v): due %v, want %v", i, s.at, s.incomplete, got, s.want)
		}
	}
	var c refreshBackoff
	now := t0
	for range 20 {
		c.due(true, now)
		now = c.next
	}
	if c.wait != reportRefreshMax {
		t.Errorf("backoff after 20 sends %s, want the cap %s", c.wait, reportRefreshMax)
	}
}
