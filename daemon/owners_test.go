package daemon

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/raftvip/raftvip/daemon/assign"
	"github.com/raftvip/raftvip/raftstore"
)

func TestNodeHealth(t *testing.T) {
	now := time.Now()
	since := now.Add(-10 * time.Second)
	down := 600 * time.Millisecond
	servers := []raftstore.Server{{ID: "cp1"}, {ID: "cp2"}, {ID: "cp3"}, {ID: "w1"}, {ID: "w2"}, {ID: "w3"}}
	contacts := map[string]time.Time{
		"cp2": now.Add(-50 * time.Millisecond), // answering
		"cp3": now.Add(-2 * time.Second),       // silent longer than node-down
		"w1":  now.Add(-599 * time.Millisecond),
		// w2: never heard since this node became leader 10s ago
		"w3": now.Add(-20 * time.Millisecond),
	}
	st := raftstore.State{Nodes: map[string]raftstore.NodeInfo{"w3": {Name: "w3", Draining: true}}}
	got := nodeHealth("cp1", servers, contacts, since, now, down, st, []string{"w1"})
	want := []assign.Node{
		{Name: "cp1", Healthy: true},
		{Name: "cp2", Healthy: true},
		{Name: "cp3", Healthy: false},
		{Name: "w1", Healthy: true, Excluded: true},
		{Name: "w2", Healthy: false},
		{Name: "w3", Healthy: false},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("nodeHealth =\n%+v\nwant\n%+v", got, want)
	}
	// Just elected: a server not heard from yet gets the node-down timeout's grace.
	fresh := nodeHealth("cp1", servers[:2], nil, now.Add(-100*time.Millisecond), now, down, raftstore.State{}, nil)
	if !fresh[1].Healthy {
		t.Fatalf("a fresh leader declared cp2 down before the node-down timeout: %+v", fresh)
	}
	// The leader itself is healthy unless it drains.
	self := nodeHealth("cp1", servers[:1], nil, since, now, down, raftstore.State{Nodes: map[string]raftstore.NodeInfo{"cp1": {Draining: true}}}, nil)
	if self[0].Healthy {
		t.Fatal("a draining leader counts as healthy")
	}
}

func TestAssignInputs(t *testing.T) {
	st := raftstore.State{
		Allocations: map[string]raftstore.Allocation{
			"ns/web":   {Service: "ns/web", Pool: "p", IPs: []string{"198.51.100.120", "2001:db8:100::120"}},
			"ns/local": {Service: "ns/local", Pool: "p", IPs: []string{"198.51.100.121"}},
			"ns/gone":  {Service: "ns/gone", Pool: "p", IPs: []string{"198.51.100.122"}},
		},
		Owners: map[string]raftstore.Owner{"198.51.100.120": {VIP: "198.51.100.120", Node: "cp2", Epoch: 4}},
	}
	eps := map[string]endpointInfo{
		"ns/web":   {HasEndpoints: true},
		"ns/local": {LocalTraffic: true, EndpointNodes: []string{"w1"}, HasEndpoints: true},
	}
	svcs, cur := assignInputs(st, eps)
	byKey := map[string]assign.Service{}
	for _, s := range svcs {
		byKey[s.Key] = s
	}
	if s := byKey["ns/web"]; len(s.VIPs) != 2 || !s.HasUsableEndpoint || s.LocalTraffic {
		t.Errorf("ns/web = %+v", s)
	}
	if s := byKey["ns/local"]; !s.LocalTraffic || !reflect.DeepEqual(s.EndpointNodes, []string{"w1"}) {
		t.Errorf("ns/local = %+v", s)
	}
	if s := byKey["ns/gone"]; s.HasUsableEndpoint {
		t.Errorf("a Service the watcher does not know must not count as having endpoints: %+v", s)
	}
	if o := cur[netip.MustParseAddr("198.51.100.120")]; o.Node != "cp2" || o.Epoch != 4 {
		t.Errorf("current owner = %+v", o)
	}
	// No Kubernetes view at all: allocated Services are announced (Cluster, with endpoints).
	svcs, _ = assignInputs(st, nil)
	for _, s := range svcs {
		if !s.HasUsableEndpoint {
			t.Errorf("without a kubeconfig %s would be withdrawn", s.Key)
		}
	}
}

func TestOwnerCommands(t *testing.T) {
	ds := []assign.Decision{
		{VIP: netip.MustParseAddr("198.51.100.120"), Service: "ns/a", From: "", To: "cp1"},
		{VIP: netip.MustParseAddr("198.51.100.121"), Service: "ns/b", From: "cp2", To: ""},
	}
	b := ownerCommands(ds)
	want := raftstore.Batch{Commands: []raftstore.Command{
		raftstore.SetOwner{VIP: "198.51.100.120", Node: "cp1", Service: "ns/a"},
		raftstore.RemoveOwner{VIP: "198.51.100.121"},
	}}
	if !reflect.DeepEqual(b, want) {
		t.Fatalf("ownerCommands = %+v, want %+v", b, want)
	}
	if _, err := raftstore.Encode(b); err != nil {
		t.Fatalf("the batch does not encode: %v", err)
	}
}
