package daemon

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// threadNices reads the nice value of every thread of this process.
func threadNices(t *testing.T) map[string]int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/stat")
		if err != nil {
			continue // the thread exited
		}
		// Fields after the parenthesised command name; nice is field 19 overall.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		n, err := strconv.Atoi(fields[16])
		if err != nil {
			t.Fatalf("thread %s: nice %q: %v", task.Name(), fields[16], err)
		}
		out[task.Name()] = n
	}
	return out
}

// TestRaisePriorityWhileThreadsStart raises the priority while goroutines keep
// pinning themselves to OS threads, which makes the runtime start new threads from
// threads the walk may not have reached yet: afterwards every thread, including
// those started after the walk, has the new nice value.
func TestRaisePriorityWhileThreadsStart(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (CAP_SYS_NICE) to lower the nice value")
	}
	const want = -3
	start, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	spawn := func(n int) {
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				lockAndWait(release)
			}()
		}
	}
	spawn(32)
	close(start)
	if err := raisePriority(want); err != nil {
		t.Fatal(err)
	}
	spawn(16) // threads started after the walk inherit it
	for tid, n := range threadNices(t) {
		if n != want {
			t.Errorf("thread %s has nice %d, want %d", tid, n, want)
		}
	}
	close(release)
	wg.Wait()
	if err := raisePriority(0); err != nil {
		t.Fatal(err)
	}
}

// lockAndWait holds an OS thread of its own until done is closed, so the runtime
// has to start another thread for the rest of the program.
func lockAndWait(done <-chan struct{}) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	<-done
}
