package cluster

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func condition(st corev1.PodStatus, typ corev1.PodConditionType) (corev1.PodCondition, int) {
	n := 0
	var found corev1.PodCondition
	for _, c := range st.Conditions {
		if c.Type == typ {
			found = c
			n++
		}
	}
	return found, n
}

func TestPodStatus(t *testing.T) {
	now := time.Unix(1000, 0)
	st := podStatus([]string{"10.244.0.5", "fd00:10:244::5"}, true, now)
	if st.Phase != corev1.PodRunning || st.PodIP != "10.244.0.5" || len(st.PodIPs) != 2 || st.PodIPs[1].IP != "fd00:10:244::5" {
		t.Fatalf("status %+v", st)
	}
	for _, typ := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		if c, n := condition(st, typ); n != 1 || c.Status != corev1.ConditionTrue {
			t.Errorf("%s: %d conditions, status %s", typ, n, c.Status)
		}
	}
	if c, _ := condition(podStatus(nil, false, now), corev1.PodReady); c.Status != corev1.ConditionFalse {
		t.Errorf("not-ready pod has Ready=%s", c.Status)
	}
}

func TestSetReadyFlipsOnlyOnChange(t *testing.T) {
	t0, t1, t2 := time.Unix(1000, 0), time.Unix(2000, 0), time.Unix(3000, 0)
	st := podStatus(nil, true, t0)
	setReady(&st, true, t1)
	if c, _ := condition(st, corev1.PodReady); !c.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("no-op set moved the transition time to %v", c.LastTransitionTime)
	}
	setReady(&st, false, t2)
	for _, typ := range []corev1.PodConditionType{corev1.ContainersReady, corev1.PodReady} {
		c, n := condition(st, typ)
		if n != 1 || c.Status != corev1.ConditionFalse || !c.LastTransitionTime.Time.Equal(t2) {
			t.Errorf("%s after flip: %d conditions, %+v", typ, n, c)
		}
	}
	var empty corev1.PodStatus
	setReady(&empty, true, t0)
	if _, n := condition(empty, corev1.PodReady); n != 1 {
		t.Error("setReady did not add a missing Ready condition")
	}
}

func TestPodObject(t *testing.T) {
	ref := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "o", UID: "u"}
	pod := podObject(Pod{Namespace: "ns", Name: "p", Node: "n1", Labels: map[string]string{"app": "x"}, OwnerReferences: []metav1.OwnerReference{ref}})
	if pod.Spec.NodeName != "n1" || pod.Namespace != "ns" || pod.Labels["app"] != "x" || len(pod.OwnerReferences) != 1 {
		t.Fatalf("pod %+v", pod.ObjectMeta)
	}
	if pod.Spec.TerminationGracePeriodSeconds == nil || *pod.Spec.TerminationGracePeriodSeconds < terminatingGrace {
		t.Fatal("pod grace period too short to stay Terminating through a test")
	}
	if len(pod.Spec.Containers) != 1 || pod.Spec.Containers[0].Image == "" {
		t.Fatal("pod needs one container with an image to pass validation")
	}
}

func TestNodeStatus(t *testing.T) {
	st := nodeStatus([]string{"198.51.100.11", "2001:db8:100::11"}, time.Unix(1, 0))
	if len(st.Addresses) != 2 || st.Addresses[1].Type != corev1.NodeInternalIP || st.Addresses[1].Address != "2001:db8:100::11" {
		t.Fatalf("addresses %+v", st.Addresses)
	}
	if len(st.Conditions) != 1 || st.Conditions[0].Type != corev1.NodeReady || st.Conditions[0].Status != corev1.ConditionTrue {
		t.Fatalf("conditions %+v", st.Conditions)
	}
}

func ptr(b bool) *bool { return &b }

func testSlices() []discoveryv1.EndpointSlice {
	return []discoveryv1.EndpointSlice{
		{
			ObjectMeta:  metav1.ObjectMeta{Name: "web-v4"},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.244.0.5"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true), Serving: ptr(true), Terminating: ptr(false)}},
				{Addresses: []string{"10.244.0.6"}},
			},
		},
		{
			ObjectMeta:  metav1.ObjectMeta{Name: "web-v6"},
			AddressType: discoveryv1.AddressTypeIPv6,
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"fd00:10:244:0:0:0:0:5"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(false), Serving: ptr(true), Terminating: ptr(true)}},
			},
		},
	}
}

func TestFindEndpoint(t *testing.T) {
	slices := testSlices()
	for _, tc := range []struct {
		ip    string
		want  EndpointState
		found bool
	}{
		{"10.244.0.5", EndpointState{Ready: true, Serving: true}, true},
		{"10.244.0.6", EndpointState{Ready: true, Serving: true}, true}, // unset conditions read as the API documents
		{"fd00:10:244::5", EndpointState{Serving: true, Terminating: true}, true},
		{"10.244.0.7", EndpointState{}, false},
	} {
		got, ok := FindEndpoint(slices, tc.ip)
		if ok != tc.found || got != tc.want {
			t.Errorf("FindEndpoint(%s) = %+v, %v; want %+v, %v", tc.ip, got, ok, tc.want, tc.found)
		}
	}
}

func TestSliceConditions(t *testing.T) {
	slices := testSlices()
	if !EndpointIs("10.244.0.5", EndpointState{Ready: true, Serving: true}).Match(slices) {
		t.Error("ready endpoint not matched")
	}
	if EndpointIs("10.244.0.5", EndpointState{Serving: true, Terminating: true}).Match(slices) {
		t.Error("ready endpoint matched as terminating")
	}
	if EndpointIs("10.244.0.9", EndpointState{}).Match(slices) {
		t.Error("absent endpoint matched")
	}
	if EndpointGone("10.244.0.5").Match(slices) || !EndpointGone("10.244.0.9").Match(slices) {
		t.Error("EndpointGone wrong")
	}
	if d := EndpointIs("10.244.0.5", EndpointState{Ready: true}).Desc; !strings.Contains(d, "10.244.0.5") {
		t.Errorf("description %q does not name the address", d)
	}
}

func TestDescribeSlices(t *testing.T) {
	if got := describeSlices(nil); !strings.Contains(got, "none") {
		t.Errorf("empty description %q", got)
	}
	got := describeSlices(testSlices())
	for _, want := range []string{"web-v4 (IPv4)", "[10.244.0.6]", "web-v6 (IPv6)", "Terminating:true"} {
		if !strings.Contains(got, want) {
			t.Errorf("description %q lacks %q", got, want)
		}
	}
}
