package watchers

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
)

const testNS = "kube-system"

// newFakeStore returns a store on a fake dynamic client that, like the API server,
// turns generateName into a name and gives every object a UID.
func newFakeStore(t *testing.T, objs ...runtime.Object) (*L2StatusStore, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	c := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		L2StatusGVR: "ServiceL2StatusList",
		podGVR:      "PodList",
	}, objs...)
	var n atomic.Int64
	c.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		u := a.(k8stesting.CreateAction).GetObject().(*unstructured.Unstructured)
		i := n.Add(1)
		if u.GetName() == "" && u.GetGenerateName() != "" {
			u.SetName(fmt.Sprintf("%s%05d", u.GetGenerateName(), i))
		}
		u.SetUID(types.UID(fmt.Sprintf("uid-%d", i)))
		return false, nil, nil
	})
	return NewL2StatusStoreFor(c, testNS), c
}

func pod(name, uid string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetAPIVersion("v1")
	u.SetKind("Pod")
	u.SetNamespace(testNS)
	u.SetName(name)
	u.SetUID(types.UID(uid))
	return u
}

func rawL2Status(t *testing.T, c *dynamicfake.FakeDynamicClient, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := c.Resource(L2StatusGVR).Namespace(testNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestL2StatusCreateAndList(t *testing.T) {
	s, c := newFakeStore(t)
	ctx := context.Background()
	web := L2Status{Node: "node3", Service: "shop/web", VIPs: []string{"198.51.100.100", "2001:db8:100::100"}, Interfaces: []string{"eth0"}}
	api := L2Status{Node: "node1", Service: "shop/api", VIPs: []string{"198.51.100.101"}}
	name, err := s.Create(ctx, web, PodRef{Name: "raftvip-node3", UID: "pod-3"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(name, "node3-") {
		t.Errorf("name %q does not start with the node's generateName prefix", name)
	}
	name2, err := s.Create(ctx, api, PodRef{Name: "raftvip-node1"})
	if err != nil {
		t.Fatal(err)
	}

	u := rawL2Status(t, c, name)
	if u.GetKind() != L2StatusKind || u.GetAPIVersion() != L2StatusAPIVersion || u.GetNamespace() != testNS {
		t.Errorf("stored %s %s in %q", u.GetAPIVersion(), u.GetKind(), u.GetNamespace())
	}
	wantLabels := map[string]string{LabelNode: "node3", LabelService: "shop.web", LabelManagedBy: "raftvip"}
	if got := u.GetLabels(); !mapsEqual(got, wantLabels) {
		t.Errorf("labels %v, want %v", got, wantLabels)
	}
	refs := u.GetOwnerReferences()
	if len(refs) != 1 || refs[0].Kind != "Pod" || refs[0].APIVersion != "v1" || refs[0].Name != "raftvip-node3" || refs[0].UID != "pod-3" {
		t.Errorf("owner references %+v, want the pod raftvip-node3", refs)
	}
	status, _, _ := unstructured.NestedMap(u.Object, "status")
	wantStatus := map[string]any{"node": "node3", "serviceNamespace": "shop", "serviceName": "web",
		"vips": []any{"198.51.100.100", "2001:db8:100::100"}, "interfaces": []any{map[string]any{"name": "eth0"}}}
	if fmt.Sprint(status) != fmt.Sprint(wantStatus) {
		t.Errorf("status %v, want %v", status, wantStatus)
	}
	if refs := rawL2Status(t, c, name2).GetOwnerReferences(); len(refs) != 0 {
		t.Errorf("object created without an owner has owner references %+v", refs)
	}

	got, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != name2 || got[1].Name != name {
		t.Fatalf("List returned %+v, want %s then %s", got, name2, name)
	}
	if !sameStatus(got[1].L2Status, web) || got[1].OwnerUID != "pod-3" {
		t.Errorf("List read back %+v owner %q, want %+v owner pod-3", got[1].L2Status, got[1].OwnerUID, web)
	}
	if !sameStatus(got[0].L2Status, api) || got[0].OwnerUID != "" {
		t.Errorf("List read back %+v owner %q, want %+v without owner", got[0].L2Status, got[0].OwnerUID, api)
	}
}

func TestL2StatusListSkipsForeignAndFlagsMalformed(t *testing.T) {
	foreign := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{"node": "x", "serviceNamespace": "a", "serviceName": "b"}}}
	foreign.SetAPIVersion(L2StatusAPIVersion)
	foreign.SetKind(L2StatusKind)
	foreign.SetNamespace(testNS)
	foreign.SetName("someone-elses")
	broken := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{"node": "node1"}}}
	broken.SetAPIVersion(L2StatusAPIVersion)
	broken.SetKind(L2StatusKind)
	broken.SetNamespace(testNS)
	broken.SetName("node1-broken")
	broken.SetLabels(map[string]string{LabelNode: "node1"})
	s, _ := newFakeStore(t, foreign, broken)
	got, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "node1-broken" {
		t.Fatalf("List returned %+v, want only the labelled object", got)
	}
	if got[0].Node != "" || got[0].Service != "" {
		t.Errorf("an object without a Service reads as %+v, want empty so it gets replaced", got[0].L2Status)
	}
}

func TestL2StatusUpdate(t *testing.T) {
	s, c := newFakeStore(t)
	ctx := context.Background()
	st := L2Status{Node: "node2", Service: "shop/web", VIPs: []string{"198.51.100.100"}, Interfaces: []string{"eth0"}}
	name, err := s.Create(ctx, st, PodRef{Name: "raftvip-node2", UID: "old-pod"})
	if err != nil {
		t.Fatal(err)
	}
	// A label someone else added survives our updates.
	u := rawL2Status(t, c, name)
	u.SetLabels(map[string]string{LabelNode: "node2", "team": "blue"})
	if _, err := c.Resource(L2StatusGVR).Namespace(testNS).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	objs, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.VIPs = []string{"198.51.100.100", "2001:db8:100::100"}
	if err := s.Update(ctx, objs[0], st, PodRef{}); err != nil {
		t.Fatal(err)
	}
	u = rawL2Status(t, c, name)
	if refs := u.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != "old-pod" {
		t.Errorf("update without an owner changed the owner references to %+v", refs)
	}
	if l := u.GetLabels(); l["team"] != "blue" || l[LabelService] != "shop.web" {
		t.Errorf("labels after update %v, want team=blue kept and ours restored", l)
	}
	if vips, _, _ := unstructured.NestedStringSlice(u.Object, "status", "vips"); !slices.Equal(vips, st.VIPs) {
		t.Errorf("vips after update %v, want %v", vips, st.VIPs)
	}

	objs, err = s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, objs[0], st, PodRef{Name: "raftvip-node2", UID: "new-pod"}); err != nil {
		t.Fatal(err)
	}
	if refs := rawL2Status(t, c, name).GetOwnerReferences(); len(refs) != 1 || refs[0].UID != "new-pod" {
		t.Errorf("owner references after update %+v, want only new-pod", refs)
	}
	if err := s.Update(ctx, L2StatusObject{Name: name}, st, PodRef{}); err == nil {
		t.Error("Update of an object not read through List succeeded")
	}
}

func TestL2StatusDelete(t *testing.T) {
	s, _ := newFakeStore(t)
	ctx := context.Background()
	st := L2Status{Node: "node2", Service: "shop/web", VIPs: []string{"198.51.100.100"}}
	if _, err := s.Create(ctx, st, PodRef{}); err != nil {
		t.Fatal(err)
	}
	objs, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, objs[0]); err != nil {
		t.Fatal(err)
	}
	if objs, err = s.List(ctx); err != nil || len(objs) != 0 {
		t.Fatalf("after delete: %+v %v", objs, err)
	}
	if err := s.Delete(ctx, L2StatusObject{Name: "node2-gone"}); err != nil {
		t.Errorf("deleting a missing object: %v, want no error", err)
	}
}

func TestL2StatusCreateRejectsBadInput(t *testing.T) {
	s, _ := newFakeStore(t)
	for _, st := range []L2Status{
		{Node: "node1", Service: "no-namespace"},
		{Node: "", Service: "a/b"},
	} {
		if _, err := s.Create(context.Background(), st, PodRef{}); err == nil {
			t.Errorf("Create(%+v) succeeded", st)
		}
	}
}

func TestL2StatusPod(t *testing.T) {
	s, c := newFakeStore(t, pod("raftvip-node1", "u-1"))
	ctx := context.Background()
	got, err := s.Pod(ctx, "raftvip-node1")
	if err != nil || got != (PodRef{Name: "raftvip-node1", UID: "u-1"}) {
		t.Errorf("Pod(raftvip-node1) = %+v, %v", got, err)
	}
	got, err = s.Pod(ctx, "raftvip-node9")
	if err != nil || got != (PodRef{Name: "raftvip-node9"}) {
		t.Errorf("Pod(missing) = %+v, %v; want a zero UID and no error", got, err)
	}
	c.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "raftvip-node1", errors.New("no"))
	})
	if _, err := s.Pod(ctx, "raftvip-node1"); err == nil || !apierrors.IsForbidden(errors.Unwrap(err)) {
		t.Errorf("Pod with a forbidden lookup: %v, want the error", err)
	}
}

var labelValueRE = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)

func TestLabelValue(t *testing.T) {
	long := strings.Repeat("a", 63) + "/" + strings.Repeat("b", 63)
	long2 := strings.Repeat("a", 63) + "/" + strings.Repeat("b", 62) + "c"
	for _, tc := range []struct{ in, want string }{
		{"node0", "node0"},
		{"worker-1.example.com", "worker-1.example.com"},
		{"shop/web", "shop.web"},
		{"-odd_name-", "odd_name"},
		{"a:b c", "a.b.c"},
		{"ünï", "n"},
		{"", ""},
	} {
		if got := LabelValue(tc.in); got != tc.want {
			t.Errorf("LabelValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	a, b := LabelValue(long), LabelValue(long2)
	for _, v := range []string{a, b} {
		if len(v) > maxLabelValue || !labelValueRE.MatchString(v) {
			t.Errorf("LabelValue of a long name = %q (%d chars), not a valid label value", v, len(v))
		}
	}
	if a == b {
		t.Errorf("two long names that differ only at the end share the label value %q", a)
	}
}

func TestSortVIPs(t *testing.T) {
	v := []string{"2001:db8:100::2", "junk", "198.51.100.10", "198.51.100.9", "2001:db8:100::10"}
	SortVIPs(v)
	want := []string{"198.51.100.9", "198.51.100.10", "2001:db8:100::2", "2001:db8:100::10", "junk"}
	if !slices.Equal(v, want) {
		t.Errorf("SortVIPs = %v, want %v", v, want)
	}
}

func sameStatus(a, b L2Status) bool {
	return a.Node == b.Node && a.Service == b.Service && slices.Equal(a.Interfaces, b.Interfaces) && slices.Equal(a.VIPs, b.VIPs)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
