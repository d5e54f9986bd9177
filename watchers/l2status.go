package watchers

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

// ServiceL2Status identifies the custom resource (docs/crd-servicel2status.yaml) that
// tells users which node announces which Service's VIPs. It is read and written
// through the dynamic client, so raftvip needs no generated clientset.
var (
	L2StatusGVR = schema.GroupVersionResource{Group: "raftvip.io", Version: "v1alpha1", Resource: "servicel2statuses"}
	podGVR      = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
)

// L2StatusKind and L2StatusAPIVersion are the kind and apiVersion of the objects.
const (
	L2StatusKind       = "ServiceL2Status"
	L2StatusAPIVersion = "raftvip.io/v1alpha1"
)

// Labels on every ServiceL2Status, so users can select by node or Service (kubectl
// get servicel2statuses -l raftvip.io/node=node3). Values are sanitised with
// LabelValue; the exact names are in the status.
const (
	LabelNode      = "raftvip.io/node"
	LabelService   = "raftvip.io/service"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	managedBy      = "raftvip"
)

// maxLabelValue is the longest label value the API server accepts.
const maxLabelValue = 63

// L2Status is what one ServiceL2Status object says: Node announces the VIPs of
// Service (namespace/name) on Interfaces, as MetalLB's status.interfaces[].name.
type L2Status struct {
	Node       string
	Service    string
	VIPs       []string // sorted by address
	Interfaces []string // sorted
}

// Key is what identifies an object: one per announcing node and Service.
func (s L2Status) Key() string { return s.Node + " " + s.Service }

// PodRef names the (mirror) pod that owns a node's objects; a zero UID means none.
type PodRef struct {
	Name string
	UID  types.UID
}

// L2StatusObject is one stored ServiceL2Status: its name, what it says, its labels
// and the UID of the pod its owner reference points at ("" without one).
type L2StatusObject struct {
	Name string
	L2Status
	Labels   map[string]string
	OwnerUID types.UID

	obj *unstructured.Unstructured
}

// L2StatusStore reads and writes the ServiceL2Status objects of one namespace (the
// daemon's own) and looks up the pods that own them.
type L2StatusStore struct {
	client    dynamic.Interface
	namespace string
}

// NewL2StatusStore builds a store from a kubeconfig. It does not contact the server.
func NewL2StatusStore(kubeconfig, namespace string) (*L2StatusStore, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %q: %w", kubeconfig, err)
	}
	// Custom resources only speak JSON; the rate limits match the main client's so a
	// thousand objects moving at once are written in seconds, not minutes.
	cfg.UserAgent = userAgent
	cfg.QPS, cfg.Burst = clientQPS, clientBurst
	c, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	return NewL2StatusStoreFor(c, namespace), nil
}

// NewL2StatusStoreFor is NewL2StatusStore with a ready client (tests use the fake).
func NewL2StatusStoreFor(c dynamic.Interface, namespace string) *L2StatusStore {
	return &L2StatusStore{client: c, namespace: namespace}
}

// Namespace is where the objects live.
func (s *L2StatusStore) Namespace() string { return s.namespace }

func (s *L2StatusStore) resource() dynamic.ResourceInterface {
	return s.client.Resource(L2StatusGVR).Namespace(s.namespace)
}

// List returns every object raftvip manages in the namespace (those labelled with a
// node), sorted by name. Objects whose status cannot be read come back with an
// empty L2Status, which matches nothing a leader wants, so they get deleted.
func (s *L2StatusStore) List(ctx context.Context) ([]L2StatusObject, error) {
	list, err := s.resource().List(ctx, metav1.ListOptions{LabelSelector: LabelNode})
	if err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", L2StatusGVR.Resource, s.namespace, err)
	}
	out := make([]L2StatusObject, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, parseL2Status(&list.Items[i]))
	}
	slices.SortFunc(out, func(a, b L2StatusObject) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func parseL2Status(u *unstructured.Unstructured) L2StatusObject {
	o := L2StatusObject{Name: u.GetName(), Labels: u.GetLabels(), obj: u}
	node, _, _ := unstructured.NestedString(u.Object, "status", "node")
	ns, _, _ := unstructured.NestedString(u.Object, "status", "serviceNamespace")
	name, _, _ := unstructured.NestedString(u.Object, "status", "serviceName")
	vips, _, _ := unstructured.NestedStringSlice(u.Object, "status", "vips")
	if node != "" && ns != "" && name != "" {
		o.L2Status = L2Status{Node: node, Service: ns + "/" + name, VIPs: vips, Interfaces: interfaceNames(u)}
	}
	for _, ref := range u.GetOwnerReferences() {
		if ref.APIVersion == "v1" && ref.Kind == "Pod" {
			o.OwnerUID = ref.UID
		}
	}
	return o
}

// interfaceNames reads status.interfaces[].name.
func interfaceNames(u *unstructured.Unstructured) []string {
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "interfaces")
	var out []string
	for _, item := range list {
		if m, ok := item.(map[string]any); ok {
			if n, ok := m["name"].(string); ok && n != "" {
				out = append(out, n)
			}
		}
	}
	return out
}

// Create adds an object for st, named "<node>-<random>", owned by owner unless its
// UID is zero, and then writes its status through the status subresource (the
// create itself drops it). It returns the name the API server chose. An object
// whose status write failed has no node in its status: the next pass deletes it.
func (s *L2StatusStore) Create(ctx context.Context, st L2Status, owner PodRef) (string, error) {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetAPIVersion(L2StatusAPIVersion)
	u.SetKind(L2StatusKind)
	u.SetNamespace(s.namespace)
	u.SetGenerateName(generateNamePrefix(st.Node))
	if err := fill(u, st, owner); err != nil {
		return "", err
	}
	status := u.Object["status"]
	got, err := s.resource().Create(ctx, u, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("create %s for %s on %s: %w", L2StatusKind, st.Service, st.Node, err)
	}
	got.Object["status"] = status
	if _, err := s.resource().UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
		return got.GetName(), fmt.Errorf("write the status of %s %s: %w", L2StatusKind, got.GetName(), err)
	}
	return got.GetName(), nil
}

// Update makes an existing object say st: its labels and owner through the object,
// its status through the status subresource, each only when it differs. A non-zero
// owner replaces the pod owner reference; a zero one leaves the owner references
// alone, so an object whose pod was just deleted is still collected with it. The
// writes are conditional on the resourceVersion List saw: a conflict is an error,
// retried by the caller.
func (s *L2StatusStore) Update(ctx context.Context, o L2StatusObject, st L2Status, owner PodRef) error {
	if o.obj == nil {
		return fmt.Errorf("update %s %s: not an object from List", L2StatusKind, o.Name)
	}
	u := o.obj.DeepCopy()
	if err := fill(u, st, owner); err != nil {
		return err
	}
	status := u.Object["status"]
	if !reflect.DeepEqual(u.GetLabels(), o.obj.GetLabels()) || !reflect.DeepEqual(u.GetOwnerReferences(), o.obj.GetOwnerReferences()) {
		got, err := s.resource().Update(ctx, u, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("update %s %s: %w", L2StatusKind, o.Name, err)
		}
		u = got
	}
	if reflect.DeepEqual(status, o.obj.Object["status"]) {
		return nil
	}
	u.Object["status"] = status
	if _, err := s.resource().UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("write the status of %s %s: %w", L2StatusKind, o.Name, err)
	}
	return nil
}

// Delete removes an object; one already gone is not an error. The UID precondition
// keeps a stale delete from hitting a newer object of the same name.
func (s *L2StatusStore) Delete(ctx context.Context, o L2StatusObject) error {
	opts := metav1.DeleteOptions{}
	if o.obj != nil {
		uid := o.obj.GetUID()
		opts.Preconditions = &metav1.Preconditions{UID: &uid}
	}
	err := s.resource().Delete(ctx, o.Name, opts)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s %s: %w", L2StatusKind, o.Name, err)
	}
	return nil
}

// Pod looks a pod up by name in the namespace; a missing pod is a zero UID, not an
// error.
func (s *L2StatusStore) Pod(ctx context.Context, name string) (PodRef, error) {
	p, err := s.client.Resource(podGVR).Namespace(s.namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return PodRef{Name: name}, nil
	}
	if err != nil {
		return PodRef{Name: name}, fmt.Errorf("pod %s/%s: %w", s.namespace, name, err)
	}
	return PodRef{Name: name, UID: p.GetUID()}, nil
}

// fill writes st's labels and status, and owner's reference, into u.
func fill(u *unstructured.Unstructured, st L2Status, owner PodRef) error {
	ns, name, ok := strings.Cut(st.Service, "/")
	if !ok || st.Node == "" {
		return fmt.Errorf("%s for %q on %q: want a namespace/name Service and a node", L2StatusKind, st.Service, st.Node)
	}
	labels := u.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range L2StatusLabels(st) {
		labels[k] = v
	}
	u.SetLabels(labels)
	if owner.UID != "" {
		u.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: owner.Name, UID: owner.UID}})
	}
	vips := make([]any, len(st.VIPs))
	for i, v := range st.VIPs {
		vips[i] = v
	}
	ifaces := make([]any, len(st.Interfaces))
	for i, n := range st.Interfaces {
		ifaces[i] = map[string]any{"name": n}
	}
	u.Object["status"] = map[string]any{
		"node":             st.Node,
		"serviceNamespace": ns,
		"serviceName":      name,
		"vips":             vips,
		"interfaces":       ifaces,
	}
	return nil
}

// L2StatusLabels are the labels an object for st carries.
func L2StatusLabels(st L2Status) map[string]string {
	return map[string]string{
		LabelNode:      LabelValue(st.Node),
		LabelService:   LabelValue(strings.Replace(st.Service, "/", ".", 1)),
		LabelManagedBy: managedBy,
	}
}

// LabelValue turns s into a valid label value: characters a label cannot hold
// become '.', leading and trailing non-alphanumerics go, and a value longer than 63
// characters is cut and ends in a hash of the whole, so distinct long names stay
// distinct.
func LabelValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			b[i] = '.'
		}
	}
	v := strings.TrimFunc(string(b), func(r rune) bool { return !isAlnum(byte(r)) })
	if len(v) <= maxLabelValue {
		return v
	}
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%s-%08x", v[:maxLabelValue-9], h.Sum32())
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// generateNamePrefix is "<node>-": the API server appends five random characters
// (and shortens a very long prefix itself).
func generateNamePrefix(node string) string { return node + "-" }

// SortVIPs sorts addresses in address order (IPv4 before IPv6), the order objects
// list them in; strings that are not addresses go last.
func SortVIPs(vips []string) {
	slices.SortFunc(vips, func(a, b string) int {
		x, errA := netip.ParseAddr(a)
		y, errB := netip.ParseAddr(b)
		switch {
		case errA != nil && errB != nil:
			return strings.Compare(a, b)
		case errA != nil:
			return 1
		case errB != nil:
			return -1
		}
		return x.Compare(y)
	})
}
