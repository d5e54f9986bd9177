package watchers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// EventComponent is the reporting controller of every Event raftvip writes.
const EventComponent = "raftvip"

// Event reasons, stable strings users can filter on (kubectl get events
// --field-selector reason=...).
const (
	ReasonAllocated        = "IPAllocated"
	ReasonAllocationFailed = "AllocationFailed"
	ReasonReleased         = "IPReleased"
	ReasonInvalidRequest   = "InvalidRequest"
	ReasonOutsidePools     = "IPOutsidePools"
	ReasonAdoptionConflict = "IPAdoptionConflict"
	ReasonAnnouncer        = "VIPAnnouncer"
)

// ServiceRef names the Service an Event is about. It needs no cached object, so a
// deleted Service can still get its release Event.
type ServiceRef struct {
	Namespace string
	Name      string
	UID       types.UID
}

// Writer writes the leader's decisions to the API server: Service status and Events.
type Writer struct {
	client      kubernetes.Interface
	events      kubernetes.Interface
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
}

// NewWriter returns a Writer; Events go through eventsClient, name host (this node) as
// their source, and are sent once Start runs. It uses the core/v1 recorder: its
// correlator keeps Events with different messages apart, where the events.k8s.io one
// folds every Event of the same reason on an object into one series and loses all
// but the first message ("moved from a to b", then "moved from b to c").
func NewWriter(client, eventsClient kubernetes.Interface, host string) *Writer {
	b := record.NewBroadcaster()
	return &Writer{
		client:      client,
		events:      eventsClient,
		broadcaster: b,
		recorder:    b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventComponent, Host: host}),
	}
}

// Start sends recorded Events to the API server until ctx is done.
func (w *Writer) Start(ctx context.Context) {
	w.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: w.events.CoreV1().Events("")})
	context.AfterFunc(ctx, w.broadcaster.Shutdown)
}

// SetIngress makes status.loadBalancer.ingress exactly ips, each with ipMode VIP;
// no ips clears it. It is a merge patch of the status subresource: nothing else in
// the Service is touched, and the informer's stripped copy is never written back.
func (w *Writer) SetIngress(ctx context.Context, namespace, name string, ips []netip.Addr) error {
	ing := make([]corev1.LoadBalancerIngress, 0, len(ips))
	mode := corev1.LoadBalancerIPModeVIP
	for _, ip := range ips {
		ing = append(ing, corev1.LoadBalancerIngress{IP: ip.String(), IPMode: &mode})
	}
	patch := map[string]any{"status": map[string]any{"loadBalancer": map[string]any{"ingress": ing}}}
	if len(ing) == 0 {
		patch = map[string]any{"status": map[string]any{"loadBalancer": map[string]any{"ingress": nil}}}
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("service %s/%s status patch: %w", namespace, name, err)
	}
	_, err = w.client.CoreV1().Services(namespace).Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("service %s/%s status: %w", namespace, name, err)
	}
	return nil
}

// Event records an Event about a Service; warning selects type Warning over Normal.
func (w *Writer) Event(ref ServiceRef, warning bool, reason, message string) {
	typ := corev1.EventTypeNormal
	if warning {
		typ = corev1.EventTypeWarning
	}
	obj := &corev1.ObjectReference{Kind: "Service", APIVersion: "v1", Namespace: ref.Namespace, Name: ref.Name, UID: ref.UID}
	w.recorder.Event(obj, typ, reason, message)
}
