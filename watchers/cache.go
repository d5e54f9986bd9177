package watchers

import (
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// viewCache remembers each Service's last computed view with a fingerprint of the
// objects it came from (their resourceVersions). The leader asks for every view many
// times a second to decide who announces; a Service whose objects did not change is
// then a map lookup instead of a walk over all its endpoints.
type viewCache struct {
	mu sync.Mutex
	m  map[string]cachedView
}

type cachedView struct {
	fingerprint string
	view        *View
}

func newViewCache() *viewCache { return &viewCache{m: map[string]cachedView{}} }

// fingerprint names the exact versions of svc and its slices; ok is false when an
// object has no resourceVersion (only fakes lack one), which disables caching.
func fingerprint(svc *corev1.Service, eps []*discoveryv1.EndpointSlice) (string, bool) {
	if svc.ResourceVersion == "" {
		return "", false
	}
	parts := make([]string, 0, len(eps))
	for _, s := range eps {
		if s.ResourceVersion == "" {
			return "", false
		}
		parts = append(parts, s.Name+"@"+s.ResourceVersion)
	}
	slices.Sort(parts)
	return svc.ResourceVersion + "|" + strings.Join(parts, ","), true
}

func (c *viewCache) get(key, fp string) (*View, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || e.fingerprint != fp {
		return nil, false
	}
	return e.view, true
}

func (c *viewCache) put(key, fp string, v *View) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = cachedView{fingerprint: fp, view: v}
}

func (c *viewCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}
