package raftstore

import (
	"slices"
	"testing"
)

// TestNodeReport: one node's committed report, as State has it, and a copy:
// changing it does not change the FSM.
func TestNodeReport(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, ReportNode{Node: NodeInfo{Name: "n1", Address: "198.51.100.11:7950", Role: RoleVoter,
		Commands: Supported(), Interfaces: []LinkState{{Name: "eth0", Up: true}}}})
	got, ok := f.NodeReport("n1")
	if !ok || got.Address != "198.51.100.11:7950" || !slices.Equal(got.Commands, Supported()) || len(got.Interfaces) != 1 {
		t.Fatalf("NodeReport(n1) = %+v, %v", got, ok)
	}
	if want := f.State().Nodes["n1"]; !slices.Equal(got.Commands, want.Commands) || got.Interfaces[0] != want.Interfaces[0] {
		t.Fatalf("NodeReport(n1) = %+v, State has %+v", got, want)
	}
	got.Commands[0], got.Interfaces[0].Up = "changed", false
	if again, _ := f.NodeReport("n1"); again.Commands[0] == "changed" || !again.Interfaces[0].Up {
		t.Fatalf("a caller's change reached the FSM: %+v", again)
	}
	if _, ok := f.NodeReport("n2"); ok {
		t.Fatal("a node that never reported has a report")
	}
}
