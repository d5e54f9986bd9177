package lab

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat (100 on
// every Linux architecture Go supports).
const clockTicks = 100

// ProcCPU is the CPU time, user plus system, that process pid has used so far,
// from /proc/PID/stat: benchmarks that report an agent's CPU read it before and
// after a window.
func ProcCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces; utime and stime are fields 14 and 15 of the whole line.
	end := strings.LastIndexByte(string(raw), ')')
	if end < 0 || end+2 > len(raw) {
		return 0, fmt.Errorf("/proc/%d/stat: no command name: %q", pid, raw)
	}
	f := strings.Fields(string(raw[end+2:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the command name: %q", pid, len(f), raw)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q, stime %q: %q", pid, f[11], f[12], raw)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}
