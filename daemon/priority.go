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
func raisePriority(nice int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("list threads: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil && err != unix.ESRCH {
			return fmt.Errorf("set nice %d on thread %d: %w", nice, tid, err)
		}
	}
	return nil
}
