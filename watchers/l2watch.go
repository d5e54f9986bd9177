package watchers

import (
	"context"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

// WatchChanges watches the namespace's pods and ServiceL2Status objects until ctx
// is done, and signals on the returned channel (coalesced: one value stands for
// any number of events) whenever a pod is added, replaced or deleted, or an object
// is deleted. A recreated mirror pod has a new UID that the owner references must
// follow at once, before the garbage collector takes the objects of the old one;
// an object deleted anyway must come back without waiting for the resync. The
// first signal follows the initial list.
func (s *L2StatusStore) WatchChanges(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	poke := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(s.client, 0, s.namespace, nil)
	pods := f.ForResource(podGVR).Informer()
	// Only a pod's name and UID matter here; the rest would only cost memory.
	_ = pods.SetTransform(podIdentity)
	_, _ = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { poke() },
		UpdateFunc: func(old, cur any) {
			if uidOf(old) != uidOf(cur) {
				poke()
			}
		},
		DeleteFunc: func(any) { poke() },
	})
	objs := f.ForResource(L2StatusGVR).Informer()
	_ = objs.SetTransform(podIdentity)
	_, _ = objs.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(any) { poke() }})
	f.Start(ctx.Done())
	return out
}

// podIdentity keeps an object's kind, namespace, name and UID.
func podIdentity(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	slim := &unstructured.Unstructured{Object: map[string]any{}}
	slim.SetAPIVersion(u.GetAPIVersion())
	slim.SetKind(u.GetKind())
	slim.SetNamespace(u.GetNamespace())
	slim.SetName(u.GetName())
	slim.SetUID(u.GetUID())
	slim.SetResourceVersion(u.GetResourceVersion())
	return slim, nil
}

func uidOf(obj any) string {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return string(u.GetUID())
	}
	return ""
}
