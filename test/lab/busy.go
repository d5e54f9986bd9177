package lab

import (
	"fmt"
	"runtime"
	"strconv"
	"time"
)

// BusyCPUs keeps every CPU of the machine busy for d, with one busy loop per CPU
// plus one inside the client namespace, each ending by itself after d (and at
// cleanup at the latest). Benchmarks use it to count what moves under CPU
// saturation without a fault.
func (l *Lab) BusyCPUs(d time.Duration) {
	l.t.Helper()
	secs := strconv.Itoa(max(int(d.Seconds()), 1))
	for i := range runtime.NumCPU() + 1 {
		l.Start(l.client, fmt.Sprintf("stress%d", i), "timeout", secs, "sh", "-c", "while :; do :; done")
	}
}
