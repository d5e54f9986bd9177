package cluster

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
)

// waitTimeout bounds every helper's wait for a controller to act. It is a
// failure deadline, never an expectation of speed.
const waitTimeout = 2 * time.Minute

// terminatingGrace is the grace period TerminatePod deletes with: with no
// kubelet to finish the deletion, the Pod stays Terminating this long.
const terminatingGrace int64 = 3600

// CreateNamespace creates a namespace and its "default" ServiceAccount (which
// Pod admission insists on, even when the serviceaccount controller is off).
func (cp *ControlPlane) CreateNamespace(t testing.TB, name string) *corev1.Namespace {
	t.Helper()
	ctx := t.Context()
	ns, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace %q: %v", name, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: name}}
	if _, err := cp.Client.CoreV1().ServiceAccounts(name).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %q: default service account: %v", name, err)
	}
	return ns
}

// CreateNode registers a Node as a kubelet would, Ready, with each address
// as an InternalIP.
func (cp *ControlPlane) CreateNode(t testing.TB, name string, addresses ...string) *corev1.Node {
	t.Helper()
	ctx := t.Context()
	node, err := cp.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:   name,
		Labels: map[string]string{corev1.LabelHostname: name},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create node %q: %v", name, err)
	}
	node.Status = nodeStatus(addresses, time.Now())
	node, err = cp.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("create node %q: status: %v", name, err)
	}
	return node
}

func nodeStatus(addresses []string, now time.Time) corev1.NodeStatus {
	st := corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now),
		}},
	}
	for _, a := range addresses {
		st.Addresses = append(st.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a})
	}
	return st
}

// Pod describes a fake workload Pod: bound to Node, with the given IPs (at
// most one per family) and labels, and a Ready condition as given.
type Pod struct {
	Namespace string
	Name      string
	Node      string
	IPs       []string
	Labels    map[string]string
	Ready     bool
	// OwnerReferences lets a test hang the Pod off another object for the
	// garbage collector.
	OwnerReferences []metav1.OwnerReference
}

// CreatePod creates the Pod bound to its node and writes the status a kubelet
// would: Running, pod IPs, and Ready as asked.
func (cp *ControlPlane) CreatePod(t testing.TB, p Pod) *corev1.Pod {
	t.Helper()
	ctx := t.Context()
	pods := cp.Client.CoreV1().Pods(p.Namespace)
	pod, err := pods.Create(ctx, podObject(p), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", p.Namespace, p.Name, err)
	}
	pod.Status = podStatus(p.IPs, p.Ready, time.Now())
	pod, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: status: %v", p.Namespace, p.Name, err)
	}
	return pod
}

func podObject(p Pod) *corev1.Pod {
	noToken := false
	grace := terminatingGrace
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, OwnerReferences: p.OwnerReferences},
		Spec: corev1.PodSpec{
			NodeName:                      p.Node,
			AutomountServiceAccountToken:  &noToken,
			TerminationGracePeriodSeconds: &grace,
			Containers:                    []corev1.Container{{Name: "app", Image: "registry.invalid/raftvip-test:none"}},
		},
	}
}

// podStatus is what a kubelet reports for a running Pod.
func podStatus(ips []string, ready bool, now time.Time) corev1.PodStatus {
	st := corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &metav1.Time{Time: now}}
	for _, ip := range ips {
		st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip})
	}
	if len(ips) > 0 {
		st.PodIP = ips[0]
	}
	st.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now)},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now)},
	}
	setReady(&st, ready, now)
	return st
}

// setReady sets the ContainersReady and Ready conditions, adding them if absent.
func setReady(st *corev1.PodStatus, ready bool, now time.Time) {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	for _, typ := range []corev1.PodConditionType{corev1.ContainersReady, corev1.PodReady} {
		found := false
		for i := range st.Conditions {
			if st.Conditions[i].Type == typ {
				found = true
				if st.Conditions[i].Status != status {
					st.Conditions[i].Status = status
					st.Conditions[i].LastTransitionTime = metav1.NewTime(now)
				}
			}
		}
		if !found {
			st.Conditions = append(st.Conditions, corev1.PodCondition{Type: typ, Status: status, LastTransitionTime: metav1.NewTime(now)})
		}
	}
}

// SetPodReady flips the Pod's Ready condition, as a kubelet would after a
// readiness probe changes.
func (cp *ControlPlane) SetPodReady(t testing.TB, namespace, name string, ready bool) *corev1.Pod {
	t.Helper()
	pods := cp.Client.CoreV1().Pods(namespace)
	var out *corev1.Pod
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := pods.Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		setReady(&pod.Status, ready, time.Now())
		out, err = pods.UpdateStatus(t.Context(), pod, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("set pod %s/%s ready=%v: %v", namespace, name, ready, err)
	}
	return out
}

// TerminatePod deletes the Pod gracefully. With no kubelet to finish the
// job it stays Terminating, which is how EndpointSlices get
// terminating=true (serving follows the Ready condition).
func (cp *ControlPlane) TerminatePod(t testing.TB, namespace, name string) {
	t.Helper()
	grace := terminatingGrace
	if err := cp.Client.CoreV1().Pods(namespace).Delete(t.Context(), name, metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatalf("terminate pod %s/%s: %v", namespace, name, err)
	}
}

// DeletePodNow removes the Pod at once (grace period 0), as a kubelet does
// when its containers have stopped.
func (cp *ControlPlane) DeletePodNow(t testing.TB, namespace, name string) {
	t.Helper()
	zero := int64(0)
	err := cp.Client.CoreV1().Pods(namespace).Delete(t.Context(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("delete pod %s/%s: %v", namespace, name, err)
	}
}

// WaitForEndpointSlices polls the Service's EndpointSlices (label
// kubernetes.io/service-name) until cond holds, and returns them. It fails
// the test, showing the last slices seen, if cond does not hold in time.
func (cp *ControlPlane) WaitForEndpointSlices(t testing.TB, namespace, service string, cond SliceCondition) []discoveryv1.EndpointSlice {
	t.Helper()
	var last []discoveryv1.EndpointSlice
	var lastErr error
	err := wait.PollUntilContextTimeout(t.Context(), pollInterval, waitTimeout, true, func(ctx context.Context) (bool, error) {
		list, err := cp.Client.DiscoveryV1().EndpointSlices(namespace).List(ctx, metav1.ListOptions{
			LabelSelector: discoveryv1.LabelServiceName + "=" + service,
		})
		if err != nil {
			lastErr = err
			return false, nil
		}
		last = list.Items
		return cond.Match(last), nil
	})
	if err != nil {
		t.Fatalf("endpointslices of %s/%s: waiting for %s: %v (last list error: %v)\nlast seen:\n%s", namespace, service, cond.Desc, err, lastErr, describeSlices(last))
	}
	return last
}

// SliceCondition is a named predicate over a Service's EndpointSlices, named
// so a timeout says what was awaited.
type SliceCondition struct {
	Desc  string
	Match func([]discoveryv1.EndpointSlice) bool
}

// EndpointState is what the endpointslice controller says about one address.
type EndpointState struct {
	Ready, Serving, Terminating bool
}

// EndpointIs waits for the endpoint with address ip to be present with
// exactly the given conditions.
func EndpointIs(ip string, want EndpointState) SliceCondition {
	return SliceCondition{
		Desc: fmt.Sprintf("endpoint %s %+v", ip, want),
		Match: func(slices []discoveryv1.EndpointSlice) bool {
			got, ok := FindEndpoint(slices, ip)
			return ok && got == want
		},
	}
}

// EndpointGone waits for no slice to list ip.
func EndpointGone(ip string) SliceCondition {
	return SliceCondition{
		Desc: fmt.Sprintf("endpoint %s gone", ip),
		Match: func(slices []discoveryv1.EndpointSlice) bool {
			_, ok := FindEndpoint(slices, ip)
			return !ok
		},
	}
}

// FindEndpoint looks ip up across slices. Unset conditions read as the API
// documents them: ready and serving unset mean true, terminating unset false.
func FindEndpoint(slices []discoveryv1.EndpointSlice, ip string) (EndpointState, bool) {
	want := net.ParseIP(ip)
	for _, s := range slices {
		for _, ep := range s.Endpoints {
			for _, a := range ep.Addresses {
				if got := net.ParseIP(a); got != nil && got.Equal(want) {
					return stateOf(ep.Conditions), true
				}
			}
		}
	}
	return EndpointState{}, false
}

func stateOf(c discoveryv1.EndpointConditions) EndpointState {
	return EndpointState{
		Ready:       c.Ready == nil || *c.Ready,
		Serving:     c.Serving == nil || *c.Serving,
		Terminating: c.Terminating != nil && *c.Terminating,
	}
}

func describeSlices(slices []discoveryv1.EndpointSlice) string {
	if len(slices) == 0 {
		return "  (none)"
	}
	var b strings.Builder
	for _, s := range slices {
		fmt.Fprintf(&b, "  %s (%s):\n", s.Name, s.AddressType)
		for _, ep := range s.Endpoints {
			fmt.Fprintf(&b, "    %v %+v\n", ep.Addresses, stateOf(ep.Conditions))
		}
	}
	return b.String()
}
