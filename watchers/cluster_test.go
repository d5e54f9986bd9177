package watchers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/raftvip/raftvip/test/cluster"
)

// clusterWait is a failure deadline for controllers on a loaded 2-core machine.
const clusterWait = 2 * time.Minute

// latestViews is a Handler that keeps the newest view per Service.
type latestViews struct {
	mu    sync.Mutex
	views map[string]*View
}

func (l *latestViews) handle(_ context.Context, updates []Update) map[string]error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, u := range updates {
		l.views[u.Key] = u.View
	}
	return nil
}

func (l *latestViews) await(t *testing.T, key, what string, cond func(*View) bool) {
	t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		l.mu.Lock()
		v := l.views[key]
		l.mu.Unlock()
		if cond(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: waiting for %s; last view %+v", key, what, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nodesAre(want ...string) func(*View) bool {
	return func(v *View) bool {
		return v != nil && v.HasEndpoints == (len(want) > 0) && slices.Equal(v.EndpointNodes, want)
	}
}

// TestWatcherOnRealControlPlane drives the real endpointslice controller through every
// readiness state and checks what the watcher considers usable.
func TestWatcherOnRealControlPlane(t *testing.T) {
	cp := cluster.Start(t, cluster.Options{})
	const ns = "readiness"
	cp.CreateNamespace(t, ns)
	for i, n := range []string{"node-a", "node-b", "node-c"} {
		cp.CreateNode(t, n, fmt.Sprintf("198.51.100.%d", 11+i))
	}

	w, err := New(cp.Client, Options{EndpointDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	views := &latestViews{views: map[string]*View{}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, views.handle)
	}()
	defer func() { cancel(); <-done }()

	createLB(t, cp, ns, "local", "web", corev1.ServiceExternalTrafficPolicyLocal, false)
	createLB(t, cp, ns, "cluster", "web", corev1.ServiceExternalTrafficPolicyCluster, false)
	createLB(t, cp, ns, "pnr", "pnr", corev1.ServiceExternalTrafficPolicyLocal, true)
	views.await(t, ns+"/local", "no endpoints yet", nodesAre())

	web := map[string]string{"app": "web"}
	cp.CreatePod(t, cluster.Pod{Namespace: ns, Name: "web-a", Node: "node-a", IPs: []string{"10.244.1.1"}, Labels: web, Ready: true})
	cp.CreatePod(t, cluster.Pod{Namespace: ns, Name: "web-b", Node: "node-b", IPs: []string{"10.244.1.2"}, Labels: web, Ready: false})
	cp.WaitForEndpointSlices(t, ns, "local", cluster.EndpointIs("10.244.1.2", cluster.EndpointState{}))
	views.await(t, ns+"/local", "ready endpoint on node-a only", nodesAre("node-a"))
	views.await(t, ns+"/cluster", "Cluster policy: endpoints but no node list", func(v *View) bool {
		return v != nil && v.HasEndpoints && v.EndpointNodes == nil
	})

	cp.SetPodReady(t, ns, "web-b", true)
	views.await(t, ns+"/local", "both ready", nodesAre("node-a", "node-b"))

	// Terminating but still serving: usable through serving=true.
	cp.TerminatePod(t, ns, "web-a")
	eps := cp.WaitForEndpointSlices(t, ns, "local", cluster.EndpointIs("10.244.1.1", cluster.EndpointState{Serving: true, Terminating: true}))
	if c := conditionsOf(t, eps, "10.244.1.1"); !Usable(c) {
		t.Fatalf("terminating, serving endpoint %+v not usable", c)
	}
	views.await(t, ns+"/local", "terminating-serving endpoint still counts", nodesAre("node-a", "node-b"))

	// Terminating and no longer serving: not usable.
	cp.SetPodReady(t, ns, "web-a", false)
	eps = cp.WaitForEndpointSlices(t, ns, "local", cluster.EndpointIs("10.244.1.1", cluster.EndpointState{Terminating: true}))
	if c := conditionsOf(t, eps, "10.244.1.1"); Usable(c) {
		t.Fatalf("terminating, not serving endpoint %+v usable", c)
	}
	views.await(t, ns+"/local", "node-a dropped", nodesAre("node-b"))

	cp.SetPodReady(t, ns, "web-b", false)
	views.await(t, ns+"/local", "no usable endpoint", nodesAre())
	views.await(t, ns+"/cluster", "Cluster policy: no usable endpoint", func(v *View) bool { return v != nil && !v.HasEndpoints })

	cp.SetPodReady(t, ns, "web-b", true)
	views.await(t, ns+"/local", "node-b back", nodesAre("node-b"))
	cp.DeletePodNow(t, ns, "web-b")
	views.await(t, ns+"/local", "pod gone", nodesAre())

	// publishNotReadyAddresses: the controller marks a not-ready pod ready, and the
	// watcher honours it.
	cp.CreatePod(t, cluster.Pod{Namespace: ns, Name: "pnr-c", Node: "node-c", IPs: []string{"10.244.2.1"}, Labels: map[string]string{"app": "pnr"}, Ready: false})
	eps = cp.WaitForEndpointSlices(t, ns, "pnr", cluster.EndpointIs("10.244.2.1", cluster.EndpointState{Ready: true}))
	if c := conditionsOf(t, eps, "10.244.2.1"); c.Ready == nil || !*c.Ready {
		t.Fatalf("publishNotReadyAddresses endpoint conditions %+v, want ready=true", c)
	}
	views.await(t, ns+"/pnr", "not-ready pod published", nodesAre("node-c"))

	t.Run("transform strips cached metadata", func(t *testing.T) {
		for _, o := range w.services.GetStore().List() {
			if s := o.(*corev1.Service); s.ManagedFields != nil {
				t.Fatalf("cached Service %s/%s keeps managedFields", s.Namespace, s.Name)
			}
		}
		for _, o := range w.slices.GetStore().List() {
			if s := o.(*discoveryv1.EndpointSlice); s.ManagedFields != nil || s.Annotations != nil {
				t.Fatalf("cached EndpointSlice %s keeps managedFields or annotations %v", s.Name, s.Annotations)
			}
		}
	})

	t.Run("excluded nodes", func(t *testing.T) {
		n, err := cp.Client.CoreV1().Nodes().Get(t.Context(), "node-b", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Labels[corev1.LabelNodeExcludeBalancers] = "true"
		if _, err := cp.Client.CoreV1().Nodes().Update(t.Context(), n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(clusterWait)
		for !slices.Equal(w.ExcludedNodes(), []string{"node-b"}) {
			if time.Now().After(deadline) {
				t.Fatalf("excluded nodes %v, want [node-b]", w.ExcludedNodes())
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func createLB(t *testing.T, cp *cluster.ControlPlane, ns, name, app string, etp corev1.ServiceExternalTrafficPolicy, publishNotReady bool) {
	t.Helper()
	_, err := cp.Client.CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Type:                     corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy:    etp,
			PublishNotReadyAddresses: publishNotReady,
			Selector:                 map[string]string{"app": app},
			Ports:                    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service %s/%s: %v", ns, name, err)
	}
}

func conditionsOf(t *testing.T, eps []discoveryv1.EndpointSlice, ip string) discoveryv1.EndpointConditions {
	t.Helper()
	for _, s := range eps {
		for _, ep := range s.Endpoints {
			if slices.Contains(ep.Addresses, ip) {
				return ep.Conditions
			}
		}
	}
	t.Fatalf("endpoint %s not found", ip)
	return discoveryv1.EndpointConditions{}
}
