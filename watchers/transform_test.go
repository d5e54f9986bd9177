package watchers

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func heavyMeta() metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: "x", Namespace: "ns", ResourceVersion: "7", UID: "u",
		Labels: map[string]string{"app": "web"},
		Annotations: map[string]string{
			"kubectl.kubernetes.io/last-applied-configuration": string(make([]byte, 4096)),
			"endpoints.kubernetes.io/last-change-trigger-time": "2026-01-01T00:00:00Z",
			AnnotationPool:            "blue",
			AnnotationLoadBalancerIPs: "198.51.100.7",
			"raftvip.io/future":       "kept too",
		},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}},
	}
}

func TestTransformStripsMetadata(t *testing.T) {
	objs := []any{
		&corev1.Service{ObjectMeta: heavyMeta(), Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}},
		&discoveryv1.EndpointSlice{ObjectMeta: heavyMeta(), Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}}},
		&corev1.Node{ObjectMeta: heavyMeta(), Status: corev1.NodeStatus{
			Images:    []corev1.ContainerImage{{Names: []string{"big/image:1"}, SizeBytes: 1 << 30}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.51.100.11"}},
		}},
	}
	wantAnn := map[string]string{AnnotationPool: "blue", AnnotationLoadBalancerIPs: "198.51.100.7", "raftvip.io/future": "kept too"}
	for _, o := range objs {
		got, err := Transform(o)
		if err != nil {
			t.Fatal(err)
		}
		m := metaOf(t, got)
		if m.ManagedFields != nil {
			t.Errorf("%T: managedFields kept", o)
		}
		if !reflect.DeepEqual(m.Annotations, wantAnn) {
			t.Errorf("%T: annotations %v, want only the raftvip.io ones %v", o, m.Annotations, wantAnn)
		}
		if m.Name != "x" || m.ResourceVersion != "7" || m.UID != "u" || m.Labels["app"] != "web" {
			t.Errorf("%T: identity or labels lost: %+v", o, m)
		}
		// Idempotent: a second pass changes nothing.
		before := reflect.ValueOf(got).Elem().Interface()
		again, _ := Transform(got)
		if !reflect.DeepEqual(before, reflect.ValueOf(again).Elem().Interface()) {
			t.Errorf("%T: Transform is not idempotent", o)
		}
	}
	n := objs[2].(*corev1.Node)
	if n.Status.Images != nil || len(n.Status.Addresses) != 1 {
		t.Errorf("node: images %v addresses %v, want images dropped and addresses kept", n.Status.Images, n.Status.Addresses)
	}
	if s := objs[1].(*discoveryv1.EndpointSlice); len(s.Endpoints) != 1 {
		t.Errorf("endpointslice lost its endpoints")
	}
}

func TestTransformLeavesOtherObjects(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: heavyMeta()}
	got, err := Transform(pod)
	if err != nil || got != pod || pod.ManagedFields == nil || len(pod.Annotations) != 5 {
		t.Fatalf("pod changed: %v %v", got, err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"a": "b"}}}
	if _, _ = Transform(svc); svc.Annotations != nil {
		t.Fatalf("annotations %v, want nil once all are dropped", svc.Annotations)
	}
}

func metaOf(t *testing.T, o any) metav1.ObjectMeta {
	t.Helper()
	switch x := o.(type) {
	case *corev1.Service:
		return x.ObjectMeta
	case *discoveryv1.EndpointSlice:
		return x.ObjectMeta
	case *corev1.Node:
		return x.ObjectMeta
	}
	t.Fatalf("unexpected %T", o)
	return metav1.ObjectMeta{}
}
