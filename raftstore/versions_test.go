package raftstore

import (
	"slices"
	"strings"
	"testing"
)

// TestBaselineIsTheOldRelease: v0.1.0 decodes exactly the types 1 to 12; the
// baseline must not claim more (the gate would open for a voter that halts) nor
// less (the old cluster could no longer run its own commands).
func TestBaselineIsTheOldRelease(t *testing.T) {
	want := []string{"set_pools", "allocate", "release", "set_owner", "remove_owner", "report_node",
		"remove_node", "batch", "set_advertisers", "set_lb_class", "release_owner", "ack_release"}
	if got := BaselineFeatures(); !slices.Equal(got, want) {
		t.Fatalf("baseline %v, want %v", got, want)
	}
	for _, f := range []string{"set_cluster_id", FeatureNodeCommands, FeatureNodeInterfaces} {
		if slices.Contains(BaselineFeatures(), f) {
			t.Errorf("baseline claims %s, which v0.1.0 cannot decode", f)
		}
		if !slices.Contains(Supported(), f) {
			t.Errorf("this binary does not report %s", f)
		}
	}
	for _, f := range BaselineFeatures() {
		if !slices.Contains(Supported(), f) {
			t.Errorf("this binary dropped %s", f)
		}
	}
}

func TestFeatureGate(t *testing.T) {
	all := Supported()
	voters := []string{"a", "b", "c"}
	cases := map[string]struct {
		feature string
		voters  []string
		known   map[string][]string
		missing []string
	}{
		"every member reports it":        {"set_cluster_id", voters, map[string][]string{"a": all, "b": all, "c": all}, nil},
		"one member silent (old)":        {"set_cluster_id", voters, map[string][]string{"a": all, "b": all}, []string{"c"}},
		"one member reports empty":       {"set_cluster_id", voters, map[string][]string{"a": all, "b": all, "c": {}}, []string{"c"}},
		"all silent: baseline type":      {"allocate", voters, nil, nil},
		"all silent: new type":           {"set_cluster_id", voters, nil, voters},
		"all silent: new field":          {FeatureNodeCommands, voters, nil, voters},
		"reports of non-members ignored": {"set_cluster_id", []string{"a"}, map[string][]string{"a": all}, nil},
		"a member with an older list":    {"set_cluster_id", voters, map[string][]string{"a": all, "b": all, "c": BaselineFeatures()}, []string{"c"}},
		"a feature nobody knows":         {"unknown(99)", voters, map[string][]string{"a": all, "b": all, "c": all}, voters},
		"no members (no configuration)":  {"set_cluster_id", nil, nil, nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := featureGate(tc.feature, tc.voters, tc.known); !slices.Equal(got, tc.missing) {
				t.Fatalf("missing %v, want %v", got, tc.missing)
			}
		})
	}
}

func TestRequiredFeatures(t *testing.T) {
	cases := map[string]struct {
		c    Command
		want []string
	}{
		"old type":                            {Release{Service: "a/b"}, []string{"release"}},
		"new type":                            {SetClusterID{ID: "x"}, []string{"set_cluster_id"}},
		"report without commands":             {ReportNode{Node: NodeInfo{Name: "a"}}, []string{"report_node"}},
		"report with commands":                {ReportNode{Node: NodeInfo{Name: "a", Commands: Supported()}}, []string{"report_node", FeatureNodeCommands}},
		"report with interfaces":              {ReportNode{Node: NodeInfo{Name: "a", Interfaces: []LinkState{{Name: "eth0", Up: true}}}}, []string{"report_node", FeatureNodeInterfaces}},
		"pools without interfaces":            {SetPools{Pools: []Pool{{Name: "a", Ranges: []string{"198.51.100.0/28"}}}}, []string{"set_pools"}},
		"a pool with an interface":            {SetPools{Pools: []Pool{{Name: "a", Ranges: []string{"198.51.100.0/28"}}, {Name: "b", Ranges: []string{"198.51.100.16/28"}, Interface: "vlan20"}}}, []string{"set_pools", FeaturePoolInterface}},
		"a report of pools with an interface": {ReportNode{Node: NodeInfo{Name: "a", Pools: []Pool{{Name: "b", Interface: "vlan20"}}}}, []string{"report_node", FeaturePoolInterface}},
		"batch needs its commands'":           {Batch{Commands: []Command{Release{Service: "a/b"}, SetClusterID{ID: "x"}}}, []string{"batch", "release", "set_cluster_id"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := requiredFeatures(tc.c); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCapabilitiesForgetADowngradedNode: a node that reported features and then
// runs an old binary again (its requests carry none) counts as the baseline,
// even while its committed report still lists them.
func TestCapabilitiesForgetADowngradedNode(t *testing.T) {
	var c capabilities
	committed := map[string][]string{"b": Supported()}
	c.note("a", Supported())
	if k := c.known(committed, "self"); !slices.Equal(k["a"], Supported()) || !slices.Equal(k["b"], Supported()) || !slices.Equal(k["self"], Supported()) {
		t.Fatalf("known %v", k)
	}
	c.note("b", nil)
	k := c.known(committed, "self")
	if missing := featureGate("set_cluster_id", []string{"a", "b", "self"}, k); !slices.Equal(missing, []string{"b"}) {
		t.Fatalf("after b's downgrade missing %v, want [b]", missing)
	}
	c.note("", Supported())
	if _, ok := c.known(nil, "self")[""]; ok {
		t.Fatal("a report without a name was recorded")
	}
}

// TestNodeCommandsDecodeStrictly: the field round-trips, and a release that does
// not know it sees an unknown field, which is why it is gated.
func TestNodeCommandsDecodeStrictly(t *testing.T) {
	in := ReportNode{Node: NodeInfo{Name: "a", Address: "x:1", Role: RoleVoter, Commands: Supported()}}
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.(ReportNode).Node.Commands; !slices.Equal(got, Supported()) {
		t.Fatalf("decoded commands %v", got)
	}
	if !strings.Contains(string(b), `"commands":[`) {
		t.Fatalf("encoding %s lacks the commands field", b)
	}
}
