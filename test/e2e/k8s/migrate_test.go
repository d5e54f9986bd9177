package k8s

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/raftvip/raftvip/daemon"
)

// setStatus writes status.loadBalancer.ingress as another controller (MetalLB,
// kube-vip) left it: plain IPs, no ipMode.
func setStatus(t testing.TB, c kubernetes.Interface, ns, name string, ips ...string) {
	t.Helper()
	svc, err := c.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Status.LoadBalancer.Ingress = nil
	for _, ip := range ips {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	if _, err := c.CoreV1().Services(ns).UpdateStatus(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("status of %s/%s: %v", ns, name, err)
	}
}

// statusIPs reads every Service's status addresses, with or without ipMode.
func statusIPs(t testing.TB, c kubernetes.Interface, ns string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for name, s := range services(t, c, ns) {
		for _, in := range s.Status.LoadBalancer.Ingress {
			out[name] = append(out[name], in.IP)
		}
	}
	return out
}

// migrationCluster is what a previous controller left: 50 Services of every family
// shape with addresses in status taken from the top of the pool downwards (so a
// fresh, lowest-first allocation would give different ones), a third of them
// naming their addresses with metallb.io/loadBalancerIPs, some naming the pool with
// metallb.io/address-pool.
func migrationCluster(t testing.TB, c kubernetes.Interface, ns string) []string {
	t.Helper()
	var names []string
	for i := range 50 {
		k := mixedKinds[i%len(mixedKinds)]
		v4 := netip.MustParseAddr("198.51.100.199")
		v6 := netip.MustParseAddr("2001:db8:100::1ff")
		for range i {
			v4, v6 = v4.Prev(), v6.Prev()
		}
		var ips []string
		for _, f := range k.families {
			if f == corev1.IPv4Protocol {
				ips = append(ips, v4.String())
			} else {
				ips = append(ips, v6.String())
			}
			if k.policy == corev1.IPFamilyPolicySingleStack {
				break
			}
		}
		ann := map[string]string{}
		if i%3 == 0 {
			ann["metallb.io/loadBalancerIPs"] = strings.Join(ips, ",")
		}
		if i%7 == 0 {
			ann["metallb.io/address-pool"] = "main"
		}
		name := fmt.Sprintf("svc-%02d", i)
		create(t, c, ns, lbService(name, k, ann))
		setStatus(t, c, ns, name, ips...)
		names = append(names, name)
	}
	return names
}

// TestMigrationAdoptsStatus: raftvip starts with empty Raft state on a cluster
// another controller served. Every Service keeps the addresses its status shows
// (now with ipMode VIP), none moves at any time, and of two Services showing one
// address the older keeps it while both get Events.
func TestMigrationAdoptsStatus(t *testing.T) {
	e := startControlPlane(t, mainPool)
	const ns, conflictNS = "migrate", "migrate-conflict"
	e.cp.CreateNamespace(t, ns)
	e.cp.CreateNamespace(t, conflictNS)
	c := e.client
	names := migrationCluster(t, c, ns)
	create(t, c, conflictNS, lbService("dup-a", v4Only, nil))
	setStatus(t, c, conflictNS, "dup-a", "198.51.100.120")
	create(t, c, conflictNS, lbService("dup-b", v4Only, nil))
	setStatus(t, c, conflictNS, "dup-b", "198.51.100.120")
	before := statusIPs(t, c, ns)
	if len(before) != 50 {
		t.Fatalf("%d Services with status before the start, want 50", len(before))
	}

	mon := watchIngress(t, c, ns)
	start := time.Now()
	e.startAgents(t, nil)
	waitAllocated(t, c, ns, names)
	t.Logf("50 Services adopted %.1fs after the agents started", time.Since(start).Seconds())
	leader := e.leader(t)
	poll(t, "52 allocations committed", func() bool {
		st, err := leader.state(context.Background())
		return err == nil && len(st.Allocations) == 52
	})
	mon.stop(t)
	if after := statusIPs(t, c, ns); !mapsEqual(before, after) {
		t.Fatalf("status addresses changed:\nbefore %v\nafter  %v", before, after)
	}
	checkConsistent(t, e, ns, e.agents)
	waitEvent(t, c, ns, "svc-01", "IPAllocated", "adopted status 2001:db8:100::1fe")
	waitEvent(t, c, ns, "svc-03", "IPAllocated", "requested 2001:db8:100::1fc, 198.51.100.196")

	waitEvent(t, c, conflictNS, "dup-a", "IPAdoptionConflict", conflictNS+"/dup-b also shows ip 198.51.100.120")
	waitEvent(t, c, conflictNS, "dup-b", "IPAllocated", "status ip 198.51.100.120 not adopted")
	dups := waitAllocated(t, c, conflictNS, []string{"dup-a", "dup-b"})
	if got := ingressOf(dups["dup-a"]); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("198.51.100.120")}) {
		t.Fatalf("dup-a (the older) shows %v, want 198.51.100.120", got)
	}
	if got := ingressOf(dups["dup-b"]); len(got) != 1 || got[0].String() == "198.51.100.120" {
		t.Fatalf("dup-b shows %v, want a fresh address", got)
	}
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// raftStatus reads /raft/status with the daemon's own additions (warnings, class).
func (a *agent) raftStatus(ctx context.Context) (daemon.RaftStatus, error) {
	var st daemon.RaftStatus
	err := a.getJSON(ctx, "/raft/status", &st)
	return st, err
}

// makeLeader kills the leader until want is elected, restarting each killed agent
// so the cluster keeps all three voters. It kills rather than stops: a SIGTERM hands
// leadership to the most caught-up follower, the same one each time, so want could
// be passed over forever; after a kill the election is a fair race. A restarted agent
// may win the next election itself; the loop then simply kills it again.
func (e *env) makeLeader(t testing.TB, want *agent) {
	t.Helper()
	for range 20 {
		l := e.leader(t)
		if l == want {
			return
		}
		l.kill()
		poll(t, "a new leader", func() bool { return e.leader(t) != l })
		l.start(t)
		poll(t, l.name+" back in the cluster", func() bool {
			st, err := l.status(context.Background())
			return err == nil && (st.State == "Follower" || st.State == "Leader") && st.Leader.ID != ""
		})
	}
	t.Fatalf("%s never became leader", want.name)
}

// TestLBClassDisagreeingVoterReleasesNothing: three voters serve Services without a
// class; one is restarted with another --lb-class and made leader. It keeps serving
// the committed class: no allocation is released, no status changes, and its
// /raft/status and log say why.
func TestLBClassDisagreeingVoterReleasesNothing(t *testing.T) {
	e := startEnv(t, mainPool)
	const ns = "lbclass"
	e.cp.CreateNamespace(t, ns)
	c := e.client
	var names []string
	for i := range 12 {
		name := fmt.Sprintf("svc-%02d", i)
		names = append(names, name)
		create(t, c, ns, lbService(name, mixedKinds[i%len(mixedKinds)], nil))
	}
	waitAllocated(t, c, ns, names)
	before := statusIPs(t, c, ns)
	mon := watchIngress(t, c, ns)

	odd := e.agents[2]
	odd.stop()
	odd.args = append(odd.args, "--lb-class=example.com/other")
	odd.start(t)
	e.makeLeader(t, odd)
	var st daemon.RaftStatus
	poll(t, odd.name+" reports the lb-class drift", func() bool {
		var err error
		st, err = odd.raftStatus(context.Background())
		return err == nil && st.LBClassMismatch
	})
	if st.LBClass == nil || *st.LBClass != "" || !strings.Contains(strings.Join(st.Warnings, "\n"), `--lb-class "example.com/other" differs from the committed class ""`) {
		t.Fatalf("/raft/status of the odd leader: class %v warnings %q", st.LBClass, st.Warnings)
	}
	// Give the odd leader time to act on its flag if it were going to: its resync of
	// every Service runs at once on winning, well within this.
	poll(t, "the odd leader resynced", func() bool {
		n, err := odd.metric(context.Background(), "raftvip_service_reconciles_total", "")
		return err == nil && n >= float64(len(names))
	})
	time.Sleep(2 * time.Second)
	mon.stop(t)
	stt, err := odd.state(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(stt.Allocations) != len(names) {
		t.Fatalf("%d allocations under the odd leader, want %d", len(stt.Allocations), len(names))
	}
	if after := statusIPs(t, c, ns); !mapsEqual(before, after) {
		t.Fatalf("status changed under the odd leader:\nbefore %v\nafter  %v", before, after)
	}
	logb, err := os.ReadFile(odd.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(logb), "lb-class flag differs from the committed class"); n == 0 {
		t.Fatal("the odd leader never logged the drift")
	}
}
