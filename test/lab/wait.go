package lab

import "time"

// Eventually retries cond every 50 ms until it returns nil, failing the test with
// the last error after timeout. The timeout is a failure deadline, never an
// expectation: tests assert what happens, benchmarks measure how fast.
func Eventually(t TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
