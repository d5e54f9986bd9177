package daemon

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// raisePriority sets the nice value of every thread of this process. Linux keeps
// nice per thread and new threads inherit it from the thread that creates them, so
// setting it on all current threads covers the threads the Go runtime starts later.
//
// Why: with 100 ms raft timeouts, a node starved of CPU for a few heartbeats
// triggers an election and moves the VIP. keepalived runs its VRRP process with
// real-time priority for the same reason; a negative nice value is the gentler
// version of that and needs only CAP_SYS_NICE.
//
// A thread that the runtime starts from a not-yet-raised thread while the list is
// walked would keep nice 0, so the walk repeats until a listing shows no thread it
// has not raised: from then on every thread, and so every thread they start, has it.
func raisePriority(nice int) error {
	done := map[int]bool{}
	for {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("list threads: %w", err)
		}
		raised := 0
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil || done[tid] {
				continue
			}
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil && err != unix.ESRCH {
				return fmt.Errorf("set nice %d on thread %d: %w", nice, tid, err)
			}
			done[tid] = true
			raised++
		}
		if raised == 0 {
			return nil
		}
	}
}
