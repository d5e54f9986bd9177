package daemon

import (
	"sort"
	"sync"
	"time"
)

// loopHealth records when each long-running loop last completed a pass, so
// /healthz can fail and the kubelet restart an agent whose announce or leader
// loop is stuck instead of reporting ok forever.
type loopHealth struct {
	mu     sync.Mutex
	bounds map[string]time.Duration
	last   map[string]time.Time
}

// newLoopHealth starts every loop's clock at start, giving each one its bound
// to complete a first pass.
func newLoopHealth(start time.Time, intervals map[string]time.Duration) *loopHealth {
	h := &loopHealth{bounds: map[string]time.Duration{}, last: map[string]time.Time{}}
	for name, every := range intervals {
		h.bounds[name] = stuckBound(every)
		h.last[name] = start
	}
	return h
}

// stuckBound is how long a loop may go without a pass before it counts as
// stuck: ten intervals, and never under 5 s, so a busy node is not restarted.
func stuckBound(every time.Duration) time.Duration {
	return max(10*every, 5*time.Second)
}

// beat records a completed pass of the named loop.
func (h *loopHealth) beat(name string, now time.Time) {
	h.mu.Lock()
	h.last[name] = now
	h.mu.Unlock()
}

// stuck lists, sorted, the loops with no pass within their bound at now.
func (h *loopHealth) stuck(now time.Time) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for name, at := range h.last {
		if now.Sub(at) > h.bounds[name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
