package k8s

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/raftvip/raftvip/test/lab"
)

// benchPool has room for 1000 Services: 204 IPv4 and 4096 IPv6 addresses, none
// of them a lab host's (.11-.15 are the nodes, .50 the client and API server).
const benchPool = "bench=198.51.100.51-198.51.100.254,2001:db8:100::1000-2001:db8:100::1fff"

// sample is what one agent looked like at one moment.
type sample struct {
	applied                    uint64
	applies, commands          float64
	reconciles                 float64
	sliceEvents, serviceEvents float64
	viewsChanged, viewsSkipped float64
	cpuSeconds                 float64
	hwmMB, rssMB               float64
}

func takeSample(tb testing.TB, a *agent) sample {
	tb.Helper()
	ctx := context.Background()
	var s sample
	st, err := a.status(ctx)
	if err != nil {
		tb.Fatalf("%s status: %v", a.name, err)
	}
	s.applied = st.AppliedIndex
	m := func(name, label string) float64 {
		v, err := a.metric(ctx, name, label)
		if err != nil {
			tb.Fatalf("%s metrics: %v", a.name, err)
		}
		return v
	}
	s.applies = m("raftvip_service_raft_applies_total", "")
	s.commands = m("raftvip_service_raft_commands_total", "")
	s.reconciles = m("raftvip_service_reconciles_total", "")
	s.sliceEvents = m("raftvip_kube_events_received_total", `kind="endpointslice"`)
	s.serviceEvents = m("raftvip_kube_events_received_total", `kind="service"`)
	s.viewsChanged = m("raftvip_kube_service_views_total", `result="changed"`)
	s.viewsSkipped = m("raftvip_kube_service_views_total", `result="unchanged"`)
	s.cpuSeconds, s.hwmMB, s.rssMB = procStats(tb, a.pid())
	return s
}

// procStats reads CPU seconds (user+system) with lab.ProcCPU and peak and
// current RSS from /proc/<pid>/status.
func procStats(tb testing.TB, pid int) (cpu, hwmMB, rssMB float64) {
	tb.Helper()
	used, err := lab.ProcCPU(pid)
	if err != nil {
		tb.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		kb, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
		if k == "VmHWM" {
			hwmMB = kb / 1024
		} else {
			rssMB = kb / 1024
		}
	}
	return used.Seconds(), hwmMB, rssMB
}

// parallel runs f(i) for i in [0,n) on workers goroutines and returns the first error.
func parallel(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func waitPools(tb testing.TB, a *agent) {
	tb.Helper()
	poll(tb, "pools committed", func() bool {
		st, err := a.state(context.Background())
		return err == nil && len(st.Pools) > 0
	})
}

// BenchmarkServices1000 creates 1000 LoadBalancer Services at once and measures the
// time until all show their addresses, the Raft entries that took, and the leader's
// CPU and memory.
func BenchmarkServices1000(b *testing.B) {
	const n = 1000
	e := startEnv(b, benchPool)
	const ns = "bench"
	e.cp.CreateNamespace(b, ns)
	leader := e.leader(b)
	waitPools(b, leader)
	before := takeSample(b, leader)
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("s%04d", i)
	}
	b.ResetTimer()
	start := time.Now()
	err := parallel(n, 32, func(i int) error {
		k := v6Only
		if i%5 == 0 {
			k = preferDual
		}
		_, err := e.client.CoreV1().Services(ns).Create(context.Background(), lbService(names[i], k, nil), metav1.CreateOptions{})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	created := time.Since(start)
	waitAllocated(b, e.client, ns, names)
	took := time.Since(start)
	b.StopTimer()
	after := takeSample(b, leader)
	checkConsistent(b, e, ns, e.agents)
	if l := e.leader(b); l != leader {
		b.Logf("leadership moved from %s to %s during the run; numbers cover %s only", leader.name, l.name, leader.name)
	}

	b.ReportMetric(took.Seconds(), "s_all_ingress")
	b.ReportMetric(created.Seconds(), "s_create")
	b.ReportMetric(float64(after.applied-before.applied), "raft_entries")
	b.ReportMetric(after.applies-before.applies, "svc_raft_applies")
	b.ReportMetric(after.commands-before.commands, "svc_raft_commands")
	b.ReportMetric(after.reconciles-before.reconciles, "reconciles")
	b.ReportMetric(after.serviceEvents-before.serviceEvents, "svc_events")
	b.ReportMetric(after.cpuSeconds-before.cpuSeconds, "leader_cpu_s")
	b.ReportMetric(after.hwmMB, "leader_peak_rss_MB")
	b.Logf("1000 services: created in %v, all with ingress after %v; raft log +%d entries (%v service applies carrying %v commands); leader CPU %.2fs, RSS peak %.0f MB (before %.0f MB)",
		created.Round(time.Millisecond), took.Round(time.Millisecond), after.applied-before.applied, after.applies-before.applies,
		after.commands-before.commands, after.cpuSeconds-before.cpuSeconds, after.hwmMB, before.hwmMB)
}

// Endpoint churn sizing: the goal is 20,000 endpoints; the pods are created until the
// goal or the time budget, whichever comes first, and the benchmark reports how many
// it reached.
const (
	churnGoalPods     = 20000
	churnBigServices  = 20
	churnSmallSvcs    = 5
	churnNodes        = 10
	churnCreateBudget = 5 * time.Minute
	churnStall        = time.Minute
	churnDuration     = 60 * time.Second
	churnWorkers      = 16
	churnSettle       = 5 * time.Second
	churnIdle         = 20 * time.Second
)

func churnPod(ns, name, app, node, ip string) *corev1.Pod {
	noToken := false
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{
			NodeName:                     node,
			AutomountServiceAccountToken: &noToken,
			Containers:                   []corev1.Container{{Name: "app", Image: "registry.invalid/raftvip-bench:none"}},
		},
		Status: corev1.PodStatus{
			Phase:  corev1.PodRunning,
			PodIP:  ip,
			PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
				{Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue},
			},
		},
	}
}

func createPod(ctx context.Context, c kubernetes.Interface, p *corev1.Pod) error {
	status := p.Status
	created, err := c.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	created.Status = status
	_, err = c.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	return err
}

func setReady(ctx context.Context, c kubernetes.Interface, ns, name string, ready bool) error {
	st := "False"
	if ready {
		st = "True"
	}
	patch := fmt.Sprintf(`{"status":{"conditions":[{"type":"Ready","status":%q},{"type":"ContainersReady","status":%q}]}}`, st, st)
	_, err := c.CoreV1().Pods(ns).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
	return err
}

// waitEndpoints waits until the EndpointSlices list want endpoints, or until the
// count has not grown for churnStall (kube-controller-manager writes slices at its
// default 20 QPS, which on a loaded machine may never catch up), and returns the count.
func waitEndpoints(tb testing.TB, c kubernetes.Interface, ns string, want int) int {
	tb.Helper()
	best, since := 0, time.Now()
	for {
		n := countEndpoints(tb, c, ns)
		if n > best {
			best, since = n, time.Now()
		}
		if n >= want || time.Since(since) > churnStall {
			return best
		}
		time.Sleep(2 * time.Second)
	}
}

func countEndpoints(tb testing.TB, c kubernetes.Interface, ns string) int {
	tb.Helper()
	list, err := c.DiscoveryV1().EndpointSlices(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, s := range list.Items {
		if s.Labels[discoveryv1.LabelServiceName] != "" {
			n += len(s.Endpoints)
		}
	}
	return n
}

// BenchmarkEndpointChurn fills the cluster with endpoints and flips pods between
// ready and not ready for a fixed time, then reports how many informer events the
// agents received against how many Service views reached the reconcile, and what that
// cost in CPU and memory. Most Services are large and spread over every node, so a
// single flip changes nothing the reconcile looks at; a few tiny Services with
// externalTrafficPolicy Local change their node set on most flips.
func BenchmarkEndpointChurn(b *testing.B) {
	e := startEnv(b, benchPool)
	const ns = "churn"
	e.cp.CreateNamespace(b, ns)
	ctx := context.Background()
	for i := range churnNodes {
		e.cp.CreateNode(b, fmt.Sprintf("node-%02d", i), fmt.Sprintf("198.51.100.%d", 11+i))
	}
	var svcs []*corev1.Service
	for i := range churnBigServices {
		s := lbService(fmt.Sprintf("big-%02d", i), v4Only, nil) // the pods have IPv4 addresses
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		svcs = append(svcs, s)
	}
	for i := range churnSmallSvcs {
		s := lbService(fmt.Sprintf("small-%02d", i), v4Only, nil)
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		svcs = append(svcs, s)
	}
	create(b, e.client, ns, svcs...)

	// Two pods per small Service, on different nodes; then the big ones, round robin.
	var small, big []string
	for i := range churnSmallSvcs {
		for j := range 2 {
			name := fmt.Sprintf("small-%02d-%d", i, j)
			p := churnPod(ns, name, fmt.Sprintf("small-%02d", i), fmt.Sprintf("node-%02d", j), fmt.Sprintf("10.250.%d.%d", i, j+1))
			if err := createPod(ctx, e.client, p); err != nil {
				b.Fatal(err)
			}
			small = append(small, name)
		}
	}
	deadline := time.Now().Add(churnCreateBudget)
	var made atomic.Int64
	err := parallel(churnGoalPods, churnWorkers, func(i int) error {
		if time.Now().After(deadline) {
			return nil
		}
		name := fmt.Sprintf("big-%05d", i)
		ip := fmt.Sprintf("10.%d.%d.%d", 128+i/65536, i/256%256, i%256)
		p := churnPod(ns, name, fmt.Sprintf("big-%02d", i%churnBigServices), fmt.Sprintf("node-%02d", i%churnNodes), ip)
		if err := createPod(ctx, e.client, p); err != nil {
			return err
		}
		made.Add(1)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for i := range int(made.Load()) {
		big = append(big, fmt.Sprintf("big-%05d", i))
	}
	pods := len(big) + len(small)
	b.Logf("created %d pods (goal %d) in the %v budget", pods, churnGoalPods+len(small), churnCreateBudget)
	endpoints := waitEndpoints(b, e.client, ns, pods)
	b.Logf("the endpointslice controller published %d of %d endpoints", endpoints, pods)
	names := make([]string, len(svcs))
	for i, s := range svcs {
		names[i] = s.Name
	}
	waitAllocated(b, e.client, ns, names)
	leader := e.leader(b)
	// Let the agents' queues drain before the window opens.
	time.Sleep(churnSettle)

	// An idle window first, so the churn's cost can be told from what the agents
	// spend anyway (raft heartbeats, the leader's periodic owner decisions).
	idleStart := takeSample(b, leader)
	time.Sleep(churnIdle)
	idleCPU := takeSample(b, leader).cpuSeconds - idleStart.cpuSeconds
	before := make([]sample, len(e.agents))
	for i, a := range e.agents {
		before[i] = takeSample(b, a)
	}
	b.ResetTimer()
	var flips atomic.Int64
	stop := time.Now().Add(churnDuration)
	readyState := sync.Map{}
	var wg sync.WaitGroup
	for w := range churnWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for time.Now().Before(stop) {
				pool := big
				if r.IntN(10) == 0 {
					pool = small
				}
				name := pool[r.IntN(len(pool))]
				wasNotReady, _ := readyState.Load(name)
				ready := wasNotReady == true
				if err := setReady(ctx, e.client, ns, name, ready); err != nil {
					continue
				}
				readyState.Store(name, !ready)
				flips.Add(1)
			}
		}()
	}
	wg.Wait()
	time.Sleep(churnSettle)
	b.StopTimer()

	var lb, la sample
	maxFollowerCPU, maxFollowerRSS := 0.0, 0.0
	for i, a := range e.agents {
		after := takeSample(b, a)
		if a == leader {
			lb, la = before[i], after
			continue
		}
		maxFollowerCPU = max(maxFollowerCPU, after.cpuSeconds-before[i].cpuSeconds)
		maxFollowerRSS = max(maxFollowerRSS, after.hwmMB)
	}
	events := la.sliceEvents - lb.sliceEvents
	b.ReportMetric(float64(endpoints), "endpoints")
	b.ReportMetric(float64(flips.Load())/churnDuration.Seconds(), "flips/s")
	b.ReportMetric(events, "slice_events")
	b.ReportMetric(la.viewsChanged-lb.viewsChanged, "views_changed")
	b.ReportMetric(la.viewsSkipped-lb.viewsSkipped, "views_unchanged")
	b.ReportMetric(la.reconciles-lb.reconciles, "reconciles")
	b.ReportMetric(la.cpuSeconds-lb.cpuSeconds, "leader_cpu_s")
	idleRate := idleCPU / churnIdle.Seconds()
	window := churnDuration + churnSettle
	b.ReportMetric(100*idleRate, "leader_idle_cpu_%")
	b.ReportMetric(la.hwmMB, "leader_peak_rss_MB")
	b.ReportMetric(maxFollowerCPU, "follower_cpu_s")
	b.ReportMetric(maxFollowerRSS, "follower_peak_rss_MB")
	extra := la.cpuSeconds - lb.cpuSeconds - idleRate*window.Seconds()
	b.Logf("%d endpoints, %d flips in %v: leader received %.0f EndpointSlice events, computed %.0f changed and %.0f unchanged views, reconciled %.0f services; leader CPU %.2fs over %v (idle rate %.1f%% of a core, so the churn cost %.2fs, %.2f ms/event), RSS peak %.0f MB; busiest follower CPU %.2fs, RSS peak %.0f MB",
		endpoints, flips.Load(), churnDuration, events, la.viewsChanged-lb.viewsChanged, la.viewsSkipped-lb.viewsSkipped,
		la.reconciles-lb.reconciles, la.cpuSeconds-lb.cpuSeconds, window, 100*idleRate, extra, 1000*extra/max(events, 1),
		la.hwmMB, maxFollowerCPU, maxFollowerRSS)
}
