package lab

import (
	"os"
	"testing"
	"time"
)

// TestProcCPU reads this process's own CPU time, which only grows while it spins.
func TestProcCPU(t *testing.T) {
	before, err := ProcCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var after time.Duration
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if after, err = ProcCPU(os.Getpid()); err != nil {
			t.Fatal(err)
		}
		if after > before {
			return
		}
	}
	t.Fatalf("CPU time stayed at %s while the test spun for 10 s (now %s)", before, after)
}

func TestProcCPUMissingProcess(t *testing.T) {
	if _, err := ProcCPU(1 << 30); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}
