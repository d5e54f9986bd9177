package daemon

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/raftvip/raftvip/raftstore"
)

// TestLoopHealthStuck proves a loop that stops completing passes is reported
// once its bound passes, and only that loop.
func TestLoopHealthStuck(t *testing.T) {
	start := time.Unix(1000, 0)
	h := newLoopHealth(start, map[string]time.Duration{"announce": 20 * time.Millisecond, "leader": time.Second})
	if got := h.stuck(start.Add(4 * time.Second)); len(got) != 0 {
		t.Fatalf("loops stuck before their bound: %v", got)
	}
	h.beat("leader", start.Add(4*time.Second))
	if got := h.stuck(start.Add(6 * time.Second)); !slices.Equal(got, []string{"announce"}) {
		t.Fatalf("want announce stuck at 6s, got %v", got)
	}
	h.beat("announce", start.Add(6*time.Second))
	if got := h.stuck(start.Add(7 * time.Second)); len(got) != 0 {
		t.Fatalf("loops stuck right after a pass: %v", got)
	}
	if got := h.stuck(start.Add(15 * time.Second)); !slices.Equal(got, []string{"announce", "leader"}) {
		t.Fatalf("want both stuck at 15s, got %v", got)
	}
}

// TestStuckBound proves the bound is ten intervals with a 5 s floor.
func TestStuckBound(t *testing.T) {
	for _, tc := range []struct{ every, want time.Duration }{
		{20 * time.Millisecond, 5 * time.Second},
		{time.Second, 10 * time.Second},
	} {
		if got := stuckBound(tc.every); got != tc.want {
			t.Errorf("stuckBound(%s) = %s, want %s", tc.every, got, tc.want)
		}
	}
}

type fakeStatus struct {
	stuck []string
	halt  *raftstore.Halt
}

func (f fakeStatus) RaftStatus() RaftStatus {
	return RaftStatus{Status: raftstore.Status{Halted: f.halt}}
}
func (fakeStatus) State() raftstore.State { return raftstore.State{} }
func (f fakeStatus) StuckLoops() []string { return f.stuck }

// TestHealthzNamesStuckLoop proves /healthz fails with 503 and names the stuck
// loop, so the kubelet's liveness probe restarts the agent; a halted state
// machine fails it too, naming the entry.
func TestHealthzNamesStuckLoop(t *testing.T) {
	halt := &raftstore.Halt{Index: 42, Type: "unknown(14)", Reason: "unknown command type 14"}
	for _, tc := range []struct {
		stuck []string
		halt  *raftstore.Halt
		code  int
		body  string
	}{
		{nil, nil, http.StatusOK, "ok"},
		{[]string{"announce"}, nil, http.StatusServiceUnavailable, "stuck loops: announce"},
		{[]string{"announce", "leader"}, nil, http.StatusServiceUnavailable, "stuck loops: announce, leader"},
		{nil, halt, http.StatusServiceUnavailable, "halted at log index 42 (unknown(14))"},
	} {
		h := newStatusHandler(fakeStatus{stuck: tc.stuck, halt: tc.halt}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("stuck %v: got %d %q, want %d containing %q", tc.stuck, rec.Code, rec.Body.String(), tc.code, tc.body)
		}
	}
}
