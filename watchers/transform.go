package watchers

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Transform is the informers' cache.TransformFunc: it strips what raftvip never reads
// before objects enter the caches, so a voter's memory grows with the number of
// Services and endpoints, not with the size of their metadata. It drops managedFields
// and every annotation not under raftvip.io/ and not an alias (last-applied-configuration alone can
// be kilobytes per object), and from Nodes their image lists. It mutates in place,
// which client-go allows, and is idempotent.
func Transform(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Service:
		stripMeta(&o.ObjectMeta)
	case *discoveryv1.EndpointSlice:
		stripMeta(&o.ObjectMeta)
	case *corev1.Node:
		stripMeta(&o.ObjectMeta)
		o.Status.Images = nil
	}
	return obj, nil
}

func stripMeta(m *metav1.ObjectMeta) {
	m.ManagedFields = nil
	for k := range m.Annotations {
		if !strings.HasPrefix(k, AnnotationPrefix) && !slices.Contains(PoolAliases, k) && !slices.Contains(IPsAliases, k) {
			delete(m.Annotations, k)
		}
	}
	if len(m.Annotations) == 0 {
		m.Annotations = nil
	}
}
