package l2_test

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/cluster"
	"github.com/raftvip/raftvip/test/faults"
)

// svcGapBudget bounds the client's outage of a Service VIP across any fault of
// the matrix: a failure deadline for a loaded two-core box running a control
// plane and five agents, about ten times the measured worst case (the leader's
// node-down timeout, then the new owner's announcement). The benchmark
// measures the real gaps.
const svcGapBudget = 3 * time.Second

// faultEnv is the lab with one dual-stack Service whose two VIPs both sit on
// node3, the workers being the only nodes allowed to announce: every fault on
// the owner moves both VIPs to the other worker, over ARP and NDP at once.
func faultEnv(tb testing.TB, extra ...string) (*env, []netip.Addr) {
	tb.Helper()
	e := startEnv(tb, []string{mainPool}, extra...)
	e.cp.CreatePod(tb, cluster.Pod{Namespace: appNS, Name: "web-1", Node: "node0", IPs: []string{"10.244.0.10"},
		Labels: map[string]string{"app": "web"}, Ready: true})
	e.setExcluded(tb, true, 0, 1, 2, 4)
	e.createServices(tb, service("f", false, dual, corev1.IPFamilyPolicyRequireDualStack, map[string]string{"app": "web"}))
	vips := e.ingress(tb, "f", 2)
	for _, v := range vips {
		e.ownerOf(tb, v, "node3, the only node allowed", func(o raftstore.Owner) bool { return o.Node == "node3" })
	}
	// Owners are sticky: node4 becoming eligible moves nothing until node3 fails.
	e.setExcluded(tb, false, 4)
	return e, vips
}

// faultKinds is the fault matrix with the env's bookkeeping: a node under a
// fault is left out of leader look-ups until it is healed.
func (e *env) faultKinds(tb testing.TB, killDown time.Duration) []faults.Fault {
	kinds := faults.Kinds(e.l, agents.Binary(tb), killDown, 2*time.Second)
	for i, f := range kinds {
		inject, heal := f.Inject, f.Heal
		kinds[i].Inject = func(a *agents.Agent) error { e.away[a.Index] = true; return inject(a) }
		kinds[i].Heal = func(a *agents.Agent) error { defer delete(e.away, a.Index); return heal(a) }
	}
	return kinds
}

// serviceFault puts f on the node announcing vips, waits for it to rejoin once
// healed and for the leader to hear its reports, and returns the client's view
// and the node faulted.
func (e *env) serviceFault(tb testing.TB, vips []netip.Addr, f faults.Fault) ([]faults.Result, *agents.Agent) {
	tb.Helper()
	st := e.state(tb)
	owner := st.Owners[vips[0].String()].Node
	for _, v := range vips[1:] {
		if o := st.Owners[v.String()].Node; o != owner {
			tb.Fatalf("the Service's VIPs sit on %s and %s, want one node", owner, o)
		}
	}
	a := e.byName(owner)
	rs := faults.Run(tb, e.l, a, vips, echoPort, f, time.Second)
	waitRejoined(tb, a)
	time.Sleep(time.Second)
	return rs, a
}

// TestServiceFaultMatrix puts each fault of the matrix on the worker announcing
// a dual-stack Service's VIPs — link cut, partition from every other node (the
// client still reaches it), SIGKILL with the agent kept down for 30 s, and
// SIGSTOP for 2 s — and checks, from the client's capture of ARP and NDP, that
// no request for either VIP is answered by two MACs, that both move to the
// other worker and never back, and that the client's UDP outage stays within
// the budget. A killed or frozen agent does nothing, and a partitioned one
// cannot hear that it lost the VIPs: the kernel fence must silence its node
// before the leader's node-down timeout hands them on.
func TestServiceFaultMatrix(t *testing.T) {
	e, vips := faultEnv(t)
	for _, f := range e.faultKinds(t, 30*time.Second) {
		t.Run(f.Name, func(t *testing.T) {
			rs, old := e.serviceFault(t, vips, f)
			st := e.state(t)
			for _, r := range rs {
				if err := r.Check(svcGapBudget); err != nil {
					t.Errorf("%s of %s: %v", f.Name, old.Name, err)
					continue
				}
				nw := st.Owners[r.VIP.String()].Node
				if nw == old.Name {
					t.Errorf("%s is still owned by %s after its %s", r.VIP, old.Name, f.Name)
					continue
				}
				om, nm := e.l.NodeMAC(old.Index).String(), e.l.NodeMAC(e.byName(nw).Index).String()
				if len(r.Order) < 2 || r.Order[0] != om || r.Order[len(r.Order)-1] != nm {
					t.Errorf("%s: answers came from %v; want the old owner %s, then the new one %s", r.VIP, r.Order, om, nm)
				}
				t.Logf("%s of %s, %s: outage %s, %d of %d requests answered twice, %d of %d probes lost",
					f.Name, old.Name, r.VIP, r.Gap.Round(time.Millisecond), len(r.Answers.Double), r.Answers.Requests, r.Lost, r.Sent)
			}
		})
	}
}

// BenchmarkServiceFaultMatrix puts RAFTVIP_BENCH_FAULTS (default 100) faults,
// drawn at random from link cut, partition, SIGKILL (restarted after 1 s) and
// SIGSTOP (2 s), on whichever worker announces a dual-stack Service's VIPs, one
// after another. The client asks for both VIPs (ARP and NDP) every 20 ms and
// probes them over UDP every 5 ms throughout each fault and its healing.
// RAFTVIP_BENCH_AGENT_FLAGS changes the agents' flags.
func BenchmarkServiceFaultMatrix(b *testing.B) {
	e, vips := faultEnv(b, append([]string{"--log-level=info"}, strings.Fields(os.Getenv("RAFTVIP_BENCH_AGENT_FLAGS"))...)...)
	faults.Bench(b, "Service VIP", e.faultKinds(b, time.Second), func(f faults.Fault) []faults.Result {
		rs, _ := e.serviceFault(b, vips, f)
		return rs
	})
}
