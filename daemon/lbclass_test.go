package daemon

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/watchers"
)

func classPtr(s string) *string { return &s }

func TestPlanLBClass(t *testing.T) {
	voters := []string{"cp1", "cp2", "cp3"}
	reports := func(classes ...*string) map[string]raftstore.NodeInfo {
		m := map[string]raftstore.NodeInfo{}
		for i, c := range classes {
			name := voters[i]
			m[name] = raftstore.NodeInfo{Name: name, Role: raftstore.RoleVoter, LBClass: c}
		}
		return m
	}
	a, b := classPtr("example.com/a"), classPtr("")
	cases := []struct {
		name      string
		flag      string
		committed *string
		nodes     map[string]raftstore.NodeInfo
		commit    bool
		drift     string // substring; "" means no drift
	}{
		{name: "first leader, nothing reported", flag: "example.com/a"},
		{name: "first leader, all agree", flag: "example.com/a", nodes: reports(a, a, a), commit: true},
		{name: "first leader, a majority agrees", flag: "example.com/a", nodes: reports(a, a), commit: true},
		{name: "first leader, only itself reported", flag: "example.com/a", nodes: reports(a)},
		{name: "first leader, old voters without the field", flag: "", nodes: reports(nil, nil, b)},
		{name: "first leader, one old voter without the field", flag: "", nodes: reports(b, nil, b), commit: true},
		{name: "first leader, a voter disagrees", flag: "example.com/a", nodes: reports(a, b, a),
			drift: `voters disagree on --lb-class (this node "example.com/a", cp2=""); no class is committed`},
		{name: "matches the committed class", flag: "example.com/a", committed: a, nodes: reports(a, b, a)},
		{name: "the empty class matches the committed empty class", flag: "", committed: b, nodes: reports(a, a, a)},
		{name: "leader differs, others keep the committed class", flag: "", committed: a, nodes: reports(b, a, a),
			drift: `this node's --lb-class "" differs from the committed class "example.com/a"`},
		{name: "leader differs, one voter not reported", flag: "", committed: a, nodes: reports(b, b),
			drift: `until every voter's --lb-class is ""`},
		{name: "leader differs, a voter without the field", flag: "", committed: a, nodes: reports(b, b, nil),
			drift: "differs from the committed class"},
		{name: "every voter changed the flag", flag: "", committed: a, nodes: reports(b, b, b), commit: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := planLBClass(c.flag, c.committed, voters, c.nodes)
			if got.commit != c.commit {
				t.Fatalf("commit = %v, want %v (drift %q)", got.commit, c.commit, got.drift)
			}
			if (got.drift == "") != (c.drift == "") || !strings.Contains(got.drift, c.drift) {
				t.Fatalf("drift %q, want %q", got.drift, c.drift)
			}
			if got.commit && got.drift != "" {
				t.Fatalf("a commit with drift %q", got.drift)
			}
		})
	}
	if p := planLBClass("x", a, nil, nil); p.commit {
		t.Fatal("committed with no voters known")
	}
}

func TestLBClassDrift(t *testing.T) {
	if d := lbClassDrift("x", nil); d != "" {
		t.Errorf("drift before any commit: %q", d)
	}
	if d := lbClassDrift("x", classPtr("x")); d != "" {
		t.Errorf("drift on a match: %q", d)
	}
	if d := lbClassDrift("x", classPtr("")); !strings.Contains(d, `"x" differs from the committed class ""`) {
		t.Errorf("drift %q", d)
	}
}

// A leader whose --lb-class differs from the committed class keeps serving the
// committed one: no allocation is released, no status changes, and a Service of its
// own flag's class is not taken on. Once the class is committed (every voter
// changed its flag), the switch happens.
func TestServicesDisagreeingLeaderKeepsCommittedClass(t *testing.T) {
	node := newFakeRaft(true)
	node.setPools(t, testPoolV4)
	node.seed(t, raftstore.SetLBClass{Class: ""})
	node.seed(t, raftstore.Allocate{Allocation: raftstore.Allocation{
		Service: "ns/old", UID: "uid-old", Pool: "v4", IPs: []string{"198.51.100.105"}, Ports: []string{"TCP/80"},
	}})
	old := newLB("old")
	old.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.105"}}
	other, class := newLB("other"), "example.com/other"
	other.Spec.LoadBalancerClass = &class
	h := startServicesFlag(t, node, class, old, other)
	h.create(t, newLB("fresh"))
	h.waitIngress(t, "fresh", "198.51.100.100")
	h.waitIngress(t, "old", "198.51.100.105")
	for _, c := range commitsOf(node) {
		if r, ok := c.(raftstore.Release); ok {
			t.Fatalf("released %s under a disagreeing leader", r.Service)
		}
	}
	if _, ok := h.alloc("other"); ok {
		t.Fatal("a Service of the leader's own flag's class got an allocation")
	}
	node.seed(t, raftstore.SetLBClass{Class: class})
	waitFor(t, "the class switched: other allocated, the classless Services released", func() bool {
		_, a := h.alloc("old")
		_, b := h.alloc("fresh")
		_, c := h.alloc("other")
		return !a && !b && c
	})
	h.waitEvent(t, "old", watchers.ReasonReleased, `loadBalancerClass "example.com/other"`)
}

// Before any class is committed nothing is decided, so a fresh leader cannot act on
// its own flag before the others were heard.
func TestServicesWaitForCommittedClass(t *testing.T) {
	node := newFakeRaft(true)
	node.setPools(t, testPoolV4)
	h := startServicesFlag(t, node, "")
	h.create(t, newLB("a"))
	waitFor(t, "a seen", func() bool { return h.metric(t, "raftvip_kube_service_views_total", "changed") >= 1 })
	if cmds := commitsOf(node); len(cmds) != 0 {
		t.Fatalf("committed %v before a class was", cmds)
	}
	node.seed(t, raftstore.SetLBClass{Class: ""})
	h.waitIngress(t, "a", "198.51.100.100")
}

// commitsOf flattens what the controller committed, barriers left out.
func commitsOf(node *fakeRaft) []raftstore.Command {
	cmds, _ := node.commits()
	var out []raftstore.Command
	for _, c := range cmds {
		if b, ok := c.(raftstore.Batch); ok {
			out = append(out, b.Commands...)
			continue
		}
		out = append(out, c)
	}
	return out
}
