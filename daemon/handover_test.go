package daemon

import (
	"testing"

	"github.com/raftvip/raftvip/raftstore"
)

func TestHandoverTarget(t *testing.T) {
	voters := []string{"cp3", "cp1", "cp2"}
	nodes := func(healthy map[string]bool) map[string]raftstore.NodeInfo {
		m := map[string]raftstore.NodeInfo{}
		for n, h := range healthy {
			m[n] = raftstore.NodeInfo{Name: n, Role: "voter", APIServerHealthy: h}
		}
		return m
	}
	cases := []struct {
		name   string
		self   string
		st     raftstore.State
		want   string
		wantOK bool
	}{
		{"bootstrap: no API server ever healthy, keep", "cp1",
			raftstore.State{Nodes: nodes(map[string]bool{"cp1": false, "cp2": false})}, "", false},
		{"self healthy keeps", "cp1",
			raftstore.State{APIServerEverHealthy: true, Nodes: nodes(map[string]bool{"cp1": true, "cp2": true})}, "", false},
		{"self down, cp2 healthy", "cp1",
			raftstore.State{APIServerEverHealthy: true, Nodes: nodes(map[string]bool{"cp1": false, "cp2": true, "cp3": true})}, "cp2", true},
		{"self down, only cp3 healthy", "cp1",
			raftstore.State{APIServerEverHealthy: true, Nodes: nodes(map[string]bool{"cp1": false, "cp2": false, "cp3": true})}, "cp3", true},
		{"self unreported counts as down", "cp2",
			raftstore.State{APIServerEverHealthy: true, Nodes: nodes(map[string]bool{"cp3": true})}, "cp3", true},
		{"all down: keep", "cp1",
			raftstore.State{APIServerEverHealthy: true, Nodes: nodes(map[string]bool{"cp1": false, "cp2": false, "cp3": false})}, "", false},
		{"healthy non-voter is not a target", "cp1",
			raftstore.State{APIServerEverHealthy: true, Nodes: nodes(map[string]bool{"cp1": false, "w1": true})}, "", false},
		{"draining voter is not a target", "cp1",
			raftstore.State{APIServerEverHealthy: true, Nodes: map[string]raftstore.NodeInfo{
				"cp1": {Name: "cp1"}, "cp2": {Name: "cp2", APIServerHealthy: true, Draining: true}, "cp3": {Name: "cp3", APIServerHealthy: true}}}, "cp3", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := handoverTarget(tc.self, tc.st, voters)
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("handoverTarget(%s) = %q,%v; want %q,%v", tc.self, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
