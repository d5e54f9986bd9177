package raftstore

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// BenchmarkLeaderWithNonvoters measures what worker nonvoters cost an idle
// cluster (heartbeats only) and whether the leader keeps its lease when every
// CPU is busy on top of that. Three voters and the nonvoters, all real nodes
// with stores and mutual TLS, run in this one process, so the CPU figure is the
// process's: the leader's heartbeats plus the nonvoters' answers. It reports
// the process's CPU cores used while idle, without and with the nonvoters, the
// elections while they were added, and those during 10 s of two busy loops per
// CPU. 50 nonvoters by default (RAFTVIP_BENCH_NONVOTERS changes it): at 200,
// all in one process on two cores, the voters lose their leader while the
// configuration grows, which measures the co-location more than the leader.
func BenchmarkLeaderWithNonvoters(b *testing.B) {
	workers := 50
	if v, err := strconv.Atoi(os.Getenv("RAFTVIP_BENCH_NONVOTERS")); err == nil && v > 0 {
		workers = v
	}
	ca := newTestCA(b, "ca")
	c := newCluster(b, 3, ca, DefaultTimeouts())
	l := settle(c)
	without := processCores(b, 5*time.Second)
	base := b.TempDir()
	for i := range workers {
		id := fmt.Sprintf("w%03d", i)
		cfg := Config{NodeID: id, BindAddr: freeAddr(b), DataDir: filepath.Join(base, id), Timeouts: DefaultTimeouts(),
			Logger: testLogger(), TLS: MutualTLSConfig(ca.workerCert(b, id), ca.pool)}
		c.add(cfg)
		// A leader that loses its lease while the configuration grows is part
		// of what this measures: add through whoever leads next.
		for try := 0; ; try++ {
			err := l.AddNonvoter(id, cfg.BindAddr)
			if err == nil {
				break
			}
			if try == 20 {
				b.Fatalf("add %s: %v", id, err)
			}
			l = voterLeader(b, c)
		}
	}
	growElections := candidacies(b, c)
	commit := l.raft.CommitIndex()
	waitFor(b, "every nonvoter to apply the configuration", func() bool {
		for _, n := range c.running() {
			if n.raft.AppliedIndex() < commit {
				return false
			}
		}
		return true
	})
	with := processCores(b, 5*time.Second)
	before := candidacies(b, c)
	leader := voterLeader(b, c).id
	stop := startCPUHogs(b)
	time.Sleep(10 * time.Second)
	stop()
	kept := 0.0
	if voterLeader(b, c).id == leader {
		kept = 1
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(growElections, "elections-while-adding")
	b.ReportMetric(without, "cores-idle-3-voters")
	b.ReportMetric(with, fmt.Sprintf("cores-idle-3-voters+%d-nonvoters", workers))
	b.ReportMetric(candidacies(b, c)-before, "elections-under-cpu-stress/10s")
	b.ReportMetric(kept, "same-leader-after-stress")
}

// voterLeader waits for the voter that leads (nonvoters may lag behind in
// seeing it) and returns it.
func voterLeader(b *testing.B, c *cluster) *Node {
	b.Helper()
	var l *Node
	waitFor(b, "a voter to lead", func() bool {
		for _, id := range []string{"n1", "n2", "n3"} {
			if n := c.node(id); n != nil && n.IsLeader() {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

// processCores is the CPU this process used over d, in cores.
func processCores(b *testing.B, d time.Duration) float64 {
	b.Helper()
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start, t0 := cpu(), time.Now()
	time.Sleep(d)
	return float64(cpu()-start) / float64(time.Since(t0))
}

// startCPUHogs starts two shell busy-loops per CPU and returns what stops them.
func startCPUHogs(b *testing.B) (stop func()) {
	b.Helper()
	var hogs []*exec.Cmd
	for range 2 * runtime.NumCPU() {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		hogs = append(hogs, cmd)
	}
	return func() {
		for _, h := range hogs {
			_ = h.Process.Kill()
			_ = h.Wait()
		}
	}
}

// candidacies counts the times the voters (n1..n3) became candidates: the
// elections.
func candidacies(b *testing.B, c *cluster) float64 {
	b.Helper()
	var sum float64
	for _, id := range []string{"n1", "n2", "n3"} {
		n := c.node(id)
		if n == nil {
			continue
		}
		var m dto.Metric
		if err := n.metrics.stateChanges.WithLabelValues("Candidate").Write(&m); err != nil {
			b.Fatal(err)
		}
		sum += m.GetCounter().GetValue()
	}
	return sum
}
