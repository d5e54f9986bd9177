package watchers

import "sync"

// memo remembers the hash of the last view handed out per Service, so the worker
// skips Services whose view did not change. Requeue and RequeueAll invalidate entries
// from other goroutines while the worker may be inside the handler; a generation
// counter makes sure such an invalidation is never overwritten by the worker
// recording the view it delivered before the invalidation.
type memo struct {
	mu      sync.Mutex
	gen     uint64
	allGen  uint64            // generation of the last invalidateAll
	invalid map[string]uint64 // generation of the last invalidate per key
	seen    map[string]seenView
}

type seenView struct {
	hash uint64
	gen  uint64
}

func newMemo() *memo {
	return &memo{invalid: map[string]uint64{}, seen: map[string]seenView{}}
}

// token is taken before views are computed; record stores it with the hash.
func (m *memo) token() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// changed reports whether key's view (hash h) must be delivered: never delivered,
// different, or invalidated since it was.
func (m *memo) changed(key string, h uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.seen[key]
	return !ok || s.hash != h || s.gen < m.allGen || s.gen < m.invalid[key]
}

// record notes that key's view h, computed at token, was handled.
func (m *memo) record(key string, h, token uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen[key] = seenView{hash: h, gen: token}
	if m.invalid[key] <= token {
		delete(m.invalid, key)
	}
}

// forget drops key (its Service is gone), so the map does not grow with churn.
func (m *memo) forget(key string, token uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.seen, key)
	if m.invalid[key] <= token {
		delete(m.invalid, key)
	}
}

func (m *memo) invalidate(keys []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	for _, k := range keys {
		m.invalid[k] = m.gen
	}
}

func (m *memo) invalidateAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	m.allGen = m.gen
}
