package cluster

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// recordingTB stands in for a test that Start fails: it records Fatalf and
// Logf instead of failing the real test, and hands cleanups to the real one.
type recordingTB struct {
	testing.TB
	mu     sync.Mutex
	failed bool
	fatal  string
	logs   strings.Builder
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.failed = true
	r.fatal = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
	fmt.Fprintf(&r.logs, format+"\n", args...)
}

func (r *recordingTB) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(&r.logs, format+"\n", args...)
}

func (r *recordingTB) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// TestStartReportsCrashedProgram gives kube-controller-manager a controller
// it does not know: Start must fail naming the program, and the cleanup must
// dump its log, where the reason is.
func TestStartReportsCrashedProgram(t *testing.T) {
	rec := &recordingTB{TB: t}
	// Registered first, so it runs after Start's own cleanup has dumped logs.
	t.Cleanup(func() {
		logs := rec.logs.String()
		if !strings.Contains(logs, "---- kube-controller-manager log") || !strings.Contains(logs, "no-such-controller") {
			t.Errorf("cleanup did not dump the controller manager's log with the reason; logged:\n%s", lastLines(logs, 40))
		}
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(rec, Options{Controllers: []string{"no-such-controller"}})
	}()
	<-done
	if !strings.Contains(rec.fatal, "kube-controller-manager exited") {
		t.Fatalf("Start failed with %q, want it to say kube-controller-manager exited", rec.fatal)
	}
}
