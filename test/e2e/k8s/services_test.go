package k8s

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/raftvip/raftvip/test/cluster"
)

// The pool every agent is started with: 100 IPv4 and 256 IPv6 addresses, so dual-stack
// Services can get their pair from it.
const mainPool = "main=198.51.100.100-198.51.100.199,2001:db8:100::100-2001:db8:100::1ff"

// inPools reports whether ip is inside one of the --pool flags' ranges (FIRST-LAST,
// CIDR or a single address).
func inPools(pools []string, ip netip.Addr) bool {
	for _, p := range pools {
		_, spec, _ := strings.Cut(p, "=")
		spec, _, _ = strings.Cut(spec, ";")
		for _, r := range strings.Split(spec, ",") {
			if first, last, ok := strings.Cut(r, "-"); ok {
				if netip.MustParseAddr(first).Compare(ip) <= 0 && ip.Compare(netip.MustParseAddr(last)) <= 0 {
					return true
				}
			} else if pfx, err := netip.ParsePrefix(r); err == nil && pfx.Contains(ip) {
				return true
			} else if a, err := netip.ParseAddr(r); err == nil && a == ip {
				return true
			}
		}
	}
	return false
}

// kind is the shape of a test Service: its families and policy.
type kind struct {
	families []corev1.IPFamily
	policy   corev1.IPFamilyPolicy
}

var (
	v4Only      = kind{[]corev1.IPFamily{corev1.IPv4Protocol}, corev1.IPFamilyPolicySingleStack}
	v6Only      = kind{[]corev1.IPFamily{corev1.IPv6Protocol}, corev1.IPFamilyPolicySingleStack}
	preferDual  = kind{[]corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}, corev1.IPFamilyPolicyPreferDualStack}
	requireDual = kind{[]corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}, corev1.IPFamilyPolicyRequireDualStack}
	mixedKinds  = []kind{v4Only, v6Only, preferDual, requireDual}
)

func lbService(name string, k kind, annotations map[string]string) *corev1.Service {
	policy := k.policy
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec: corev1.ServiceSpec{
			Type:           corev1.ServiceTypeLoadBalancer,
			IPFamilies:     k.families,
			IPFamilyPolicy: &policy,
			Selector:       map[string]string{"app": name},
			Ports:          []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
}

func create(t testing.TB, c kubernetes.Interface, ns string, svcs ...*corev1.Service) {
	t.Helper()
	for _, s := range svcs {
		if _, err := c.CoreV1().Services(ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create service %s/%s: %v", ns, s.Name, err)
		}
	}
}

// ingressOf returns a Service's status IPs, or nil if any entry lacks ipMode VIP.
func ingressOf(s *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range s.Status.LoadBalancer.Ingress {
		ip, err := netip.ParseAddr(in.IP)
		if err != nil || in.IPMode == nil || *in.IPMode != corev1.LoadBalancerIPModeVIP {
			return nil
		}
		out = append(out, ip)
	}
	return out
}

// wantFamilies is what a Service of kind k gets from a dual-stack pool, in order.
func wantFamilies(s *corev1.Service) []bool {
	var is4 []bool
	for _, f := range s.Spec.IPFamilies {
		is4 = append(is4, f == corev1.IPv4Protocol)
	}
	if s.Spec.IPFamilyPolicy == nil || *s.Spec.IPFamilyPolicy == corev1.IPFamilyPolicySingleStack {
		is4 = is4[:1]
	}
	return is4
}

func familiesOf(ips []netip.Addr) []bool {
	var is4 []bool
	for _, ip := range ips {
		is4 = append(is4, ip.Is4())
	}
	return is4
}

// services lists ns and returns them by name.
func services(t testing.TB, c kubernetes.Interface, ns string) map[string]*corev1.Service {
	t.Helper()
	list, err := c.CoreV1().Services(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list services: %v", err)
	}
	out := map[string]*corev1.Service{}
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out
}

// waitAllocated waits until every named Service shows the address families its spec
// asks for from the dual-stack pool.
func waitAllocated(t testing.TB, c kubernetes.Interface, ns string, names []string) map[string]*corev1.Service {
	t.Helper()
	var got map[string]*corev1.Service
	missing := names
	poll(t, fmt.Sprintf("ingress on %d services", len(names)), func() bool {
		got = services(t, c, ns)
		missing = slices.DeleteFunc(slices.Clone(names), func(n string) bool {
			s, ok := got[n]
			return ok && slices.Equal(familiesOf(ingressOf(s)), wantFamilies(s))
		})
		return len(missing) == 0
	})
	return got
}

// checkConsistent verifies that no address is on two Services, every address is in
// the pool, and the status of every LoadBalancer Service equals its allocation in the
// replicated state on every running agent.
func checkConsistent(t testing.TB, e *env, ns string, running []*agent) {
	t.Helper()
	svcs := services(t, e.client, ns)
	owner := map[netip.Addr]string{}
	for name, s := range svcs {
		for _, ip := range ingressOf(s) {
			if other, dup := owner[ip]; dup {
				t.Fatalf("%s is on both %s and %s", ip, other, name)
			}
			owner[ip] = name
			if !inPools(e.pools, ip) {
				t.Fatalf("%s of %s is outside the pools %v", ip, name, e.pools)
			}
		}
	}
	var lastErr string
	poll(t, "every agent's state to match the Services' status", func() bool {
		lastErr = ""
		var first map[string][]string
		for _, a := range running {
			st, err := a.state(context.Background())
			if err != nil {
				lastErr = err.Error()
				return false
			}
			allocs := map[string][]string{}
			for k, al := range st.Allocations {
				if strings.HasPrefix(k, ns+"/") {
					allocs[strings.TrimPrefix(k, ns+"/")] = al.IPs
				}
			}
			if first == nil {
				first = allocs
			} else if !reflect.DeepEqual(first, allocs) {
				lastErr = a.name + " disagrees"
				return false
			}
		}
		svcs = services(t, e.client, ns)
		for name, s := range svcs {
			var want []string
			for _, ip := range ingressOf(s) {
				want = append(want, ip.String())
			}
			if !slices.Equal(first[name], want) {
				lastErr = fmt.Sprintf("%s: status %v, allocation %v", name, want, first[name])
				return false
			}
		}
		for name := range first {
			if _, ok := svcs[name]; !ok {
				lastErr = fmt.Sprintf("allocation of deleted service %s", name)
				return false
			}
		}
		return true
	})
	if lastErr != "" {
		t.Fatal(lastErr)
	}
}

// waitEvent waits for an Event regarding Service name with the given reason and a
// note containing substr, read through the events API.
func waitEvent(t testing.TB, c kubernetes.Interface, ns, name, reason, substr string) string {
	t.Helper()
	var note string
	poll(t, fmt.Sprintf("event %s on %s/%s mentioning %q", reason, ns, name, substr), func() bool {
		list, err := c.EventsV1().Events(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, ev := range list.Items {
			if ev.Regarding.Kind == "Service" && ev.Regarding.Name == name && ev.Reason == reason &&
				ev.ReportingController == "raftvip" && strings.Contains(ev.Note, substr) {
				note = ev.Note
				return true
			}
		}
		return false
	})
	return note
}

func allocated(t testing.TB, a *agent, key string) bool {
	t.Helper()
	st, err := a.state(context.Background())
	if err != nil {
		return true // unknown: keep waiting
	}
	_, ok := st.Allocations[key]
	return ok
}

func TestLoadBalancerServices(t *testing.T) {
	e := startEnv(t, mainPool)
	const ns = "lb"
	e.cp.CreateNamespace(t, ns)
	c := e.client

	var names []string
	for i := range 50 {
		name := fmt.Sprintf("svc-%02d", i)
		names = append(names, name)
		create(t, c, ns, lbService(name, mixedKinds[i%len(mixedKinds)], nil))
	}
	svcs := waitAllocated(t, c, ns, names)
	checkConsistent(t, e, ns, e.agents)
	waitEvent(t, c, ns, "svc-03", "IPAllocated", "allocated")
	// Give svc-03 a ready endpoint: the leader then picks an announcer, and its owner
	// decision reaches the Service as an Event too.
	e.cp.CreateNode(t, "node1", "198.51.100.12")
	e.cp.CreatePod(t, cluster.Pod{Namespace: ns, Name: "svc-03-pod", Node: "node1", IPs: []string{"10.244.0.3", "fd00:10:244::3"},
		Labels: map[string]string{"app": "svc-03"}, Ready: true})
	waitEvent(t, c, ns, "svc-03", "VIPAnnouncer", "announced by node")

	t.Run("delete releases and the address is reused", func(t *testing.T) {
		freed := ingressOf(svcs["svc-00"])[0]
		if err := c.CoreV1().Services(ns).Delete(context.Background(), "svc-00", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		leader := e.leader(t)
		poll(t, "svc-00's allocation released", func() bool { return !allocated(t, leader, ns+"/svc-00") })
		waitEvent(t, c, ns, "svc-00", "IPReleased", freed.String())
		create(t, c, ns, lbService("reuse", v4Only, nil))
		got := waitAllocated(t, c, ns, []string{"reuse"})
		if ip := ingressOf(got["reuse"])[0]; ip != freed {
			t.Fatalf("new Service got %s, want the freed (lowest free) %s", ip, freed)
		}
	})

	t.Run("bad requests get an event and do not hold up others", func(t *testing.T) {
		taken := ingressOf(services(t, c, ns)["reuse"])[0].String()
		create(t, c, ns,
			lbService("outside", v4Only, map[string]string{"raftvip.io/loadBalancerIPs": "203.0.113.10"}),
			lbService("taken", v4Only, map[string]string{"raftvip.io/loadBalancerIPs": taken}),
			lbService("malformed", v4Only, map[string]string{"raftvip.io/loadBalancerIPs": "198.51.100.x"}),
			lbService("after-bad", v6Only, nil),
		)
		waitAllocated(t, c, ns, []string{"after-bad"})
		waitEvent(t, c, ns, "outside", "AllocationFailed", "203.0.113.10 is not in any pool")
		waitEvent(t, c, ns, "taken", "AllocationFailed", "ip "+taken+" is in use by "+ns+"/reuse")
		waitEvent(t, c, ns, "malformed", "InvalidRequest", `"198.51.100.x" is not an IP address`)
		for _, n := range []string{"outside", "taken", "malformed"} {
			if ips := services(t, c, ns)[n].Status.LoadBalancer.Ingress; len(ips) != 0 {
				t.Errorf("%s got %v", n, ips)
			}
		}
		checkConsistent(t, e, ns, e.agents)
	})

	t.Run("changing to ClusterIP releases", func(t *testing.T) {
		s := services(t, c, ns)["svc-01"]
		s.Spec.Type = corev1.ServiceTypeClusterIP
		if _, err := c.CoreV1().Services(ns).Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		poll(t, "svc-01's allocation released", func() bool { return !allocated(t, e.leader(t), ns+"/svc-01") })
		waitEvent(t, c, ns, "svc-01", "IPReleased", "no longer of type LoadBalancer")
		poll(t, "svc-01's status cleared", func() bool {
			return len(services(t, c, ns)["svc-01"].Status.LoadBalancer.Ingress) == 0
		})
	})

	t.Run("leader killed mid-burst", func(t *testing.T) {
		mon := watchIngress(t, c, ns)
		var burst []string
		for i := range 40 {
			burst = append(burst, fmt.Sprintf("burst-%02d", i))
		}
		// Keep creating while the leader dies, so Services arrive before, during and
		// after the election.
		created := make(chan error, 1)
		go func() {
			for i, name := range burst {
				if _, err := c.CoreV1().Services(ns).Create(context.Background(), lbService(name, mixedKinds[i%len(mixedKinds)], nil), metav1.CreateOptions{}); err != nil {
					created <- err
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			created <- nil
		}()
		countBurst := func() (n int) {
			for _, s := range services(t, c, ns) {
				if strings.HasPrefix(s.Name, "burst-") && len(ingressOf(s)) > 0 {
					n++
				}
			}
			return n
		}
		poll(t, "the first burst Services allocated", func() bool { return countBurst() >= 3 })
		old := e.leader(t)
		old.kill()
		t.Logf("killed leader %s with %d of %d burst Services allocated", old.name, countBurst(), len(burst))
		if err := <-created; err != nil {
			t.Fatal(err)
		}
		var rest []*agent
		for _, a := range e.agents {
			if a != old {
				rest = append(rest, a)
			}
		}
		waitAllocated(t, c, ns, burst)
		checkConsistent(t, e, ns, rest)
		mon.stop(t)

		old.start(t)
		checkConsistent(t, e, ns, e.agents)
	})
}

// ingressMonitor polls every Service's status and fails the test if an address is
// ever on two Services at once or a Service's address ever changes.
type ingressMonitor struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	errs   []string
	polls  int
}

func watchIngress(t testing.TB, c kubernetes.Interface, ns string) *ingressMonitor {
	ctx, cancel := context.WithCancel(context.Background())
	m := &ingressMonitor{cancel: cancel, done: make(chan struct{})}
	first := map[string]string{} // uid -> first non-empty ingress
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			list, err := c.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
			if err == nil {
				m.check(list.Items, first)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-m.done })
	return m
}

func (m *ingressMonitor) check(items []corev1.Service, first map[string]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.polls++
	owner := map[netip.Addr]string{}
	for _, s := range items {
		ips := ingressOf(&s)
		for _, ip := range ips {
			if other, dup := owner[ip]; dup {
				m.errs = append(m.errs, fmt.Sprintf("%s on both %s and %s", ip, other, s.Name))
			}
			owner[ip] = s.Name
		}
		if len(ips) == 0 || s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		now := fmt.Sprint(ips)
		if was, ok := first[string(s.UID)]; ok && was != now {
			m.errs = append(m.errs, fmt.Sprintf("%s moved from %s to %s", s.Name, was, now))
		} else if !ok {
			first[string(s.UID)] = now
		}
	}
}

func (m *ingressMonitor) stop(t testing.TB) {
	t.Helper()
	m.cancel()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.polls == 0 {
		t.Fatal("ingress monitor never polled")
	}
	if len(m.errs) > 0 {
		t.Fatalf("addresses handed out twice or moved:\n%s", strings.Join(m.errs, "\n"))
	}
}

func TestRequireDualStackWithOnlyV4Pool(t *testing.T) {
	e := startEnv(t, "v4only=198.51.100.100-198.51.100.109")
	const ns = "dual"
	e.cp.CreateNamespace(t, ns)
	c := e.client
	create(t, c, ns,
		lbService("require", requireDual, nil),
		lbService("prefer", preferDual, nil),
		lbService("single", v4Only, nil),
	)
	poll(t, "prefer and single allocated", func() bool {
		svcs := services(t, c, ns)
		return len(ingressOf(svcs["prefer"])) == 1 && len(ingressOf(svcs["single"])) == 1
	})
	if ips := ingressOf(services(t, c, ns)["prefer"]); !ips[0].Is4() {
		t.Fatalf("PreferDualStack with a v4-only pool got %v, want one IPv4", ips)
	}
	note := waitEvent(t, c, ns, "require", "AllocationFailed", "IPv6")
	t.Logf("RequireDualStack event: %s", note)
	if ips := services(t, c, ns)["require"].Status.LoadBalancer.Ingress; len(ips) != 0 {
		t.Fatalf("RequireDualStack got %v from a v4-only pool", ips)
	}
}
