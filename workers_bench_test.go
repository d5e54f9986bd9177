package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/test/lab"
)

// BenchmarkLeaderCPUWith200Workers measures what 200 worker nonvoters cost the
// leader when they only take heartbeats: three real agents on loopback (TLS,
// real stores) form the control plane, then 200 in-process raftstore nodes join
// as nonvoters (no reports, no Services: heartbeats only). It prints the
// leader process's CPU, from /proc, over a quiet window before and after the
// workers joined, and then with every CPU kept busy by other processes: the
// leader's CPU then, and whether it kept its lease (Raft terms at the start
// and end of the window). RAFTVIP_BENCH_WORKERS changes the count,
// RAFTVIP_BENCH_WINDOW (default 20s) each window.
func BenchmarkLeaderCPUWith200Workers(b *testing.B) {
	workers := 200
	if v, err := strconv.Atoi(os.Getenv("RAFTVIP_BENCH_WORKERS")); err == nil && v > 0 {
		workers = v
	}
	window := 20 * time.Second
	if v, err := time.ParseDuration(os.Getenv("RAFTVIP_BENCH_WINDOW")); err == nil && v > 0 {
		window = v
	}
	ta := newTLSAgents(b, "rv-workers")
	cp1 := ta.start("cp1", "cp1", "--bootstrap", "--log-level=warn")
	waitAgreement(b, ta.procs, "")
	join := "--join=" + ta.raft["cp1"]
	ta.start("cp2", "cp2", join, "--control-plane", "--log-level=warn")
	ta.start("cp3", "cp3", join, "--control-plane", "--log-level=warn")
	waitServers(b, cp1, 3)
	leader := leaderProc(b, ta)
	idle := cpuOver(b, leader, window)

	caCert, err := os.ReadFile(ta.caCert)
	if err != nil {
		b.Fatal(err)
	}
	caKey, err := os.ReadFile(ta.caKey)
	if err != nil {
		b.Fatal(err)
	}
	pool, err := raftstore.LoadCAPool(ta.caCert)
	if err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := range workers {
		name := fmt.Sprintf("w%03d", i)
		cert, err := raftstore.IssuePeerCert(caCert, caKey, name, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		n, err := raftstore.Open(raftstore.Config{NodeID: name, BindAddr: fmt.Sprintf("127.0.0.1:%d", freePort(b)),
			DataDir: filepath.Join(ta.dir, name), TLS: raftstore.MutualTLSConfig(cert, pool),
			Timeouts: raftstore.DefaultTimeouts(), Logger: quiet})
		if err != nil {
			b.Fatalf("worker %s: %v", name, err)
		}
		b.Cleanup(func() { _ = n.Shutdown(5 * time.Second) })
		if err := n.Join(ta.raft[leader.name], 10*time.Second); err != nil {
			b.Fatalf("worker %s joins: %v", name, err)
		}
	}
	waitServers(b, leader, 3+workers)
	loaded := cpuOver(b, leader, window)

	stop := busyCPUs(b, window+5*time.Second)
	before := termOf(b, leader)
	stressed := cpuOver(b, leader, window)
	after := termOf(b, leader)
	stop()
	elections := after - before
	st, err := getStatus(leader.status)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("leader %s CPU over %s: %.1f%% with 3 voters, %.1f%% with %d worker nonvoters, %.1f%% with every CPU busy; %d elections under stress, still leading: %v\n",
		leader.name, window, idle, loaded, workers, stressed, elections, st.State == "Leader")
	b.ReportMetric(idle, "leader-cpu-%-3-voters")
	b.ReportMetric(loaded, "leader-cpu-%-workers")
	b.ReportMetric(stressed, "leader-cpu-%-workers-stressed")
	b.ReportMetric(float64(elections), "elections-stressed")
}

// waitServers waits until a's configuration lists n servers.
func waitServers(b *testing.B, a *agentProc, n int) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st, err := getStatus(a.status)
		if err == nil && len(st.Servers) == n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s never listed %d servers: %d, %v", a.name, n, len(st.Servers), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leaderProc is the agent that leads.
func leaderProc(b *testing.B, ta *tlsAgents) *agentProc {
	b.Helper()
	id, _ := waitAgreement(b, ta.procs, "")
	for _, a := range ta.procs {
		if a.name == id {
			return a
		}
	}
	b.Fatalf("no agent named %q leads", id)
	return nil
}

// termOf is a's current Raft term.
func termOf(b *testing.B, a *agentProc) uint64 {
	b.Helper()
	st, err := getStatus(a.status)
	if err != nil {
		b.Fatal(err)
	}
	return st.Term
}

// cpuOver is a's CPU use, user plus system, over d, in percent of one CPU.
func cpuOver(b *testing.B, a *agentProc, d time.Duration) float64 {
	b.Helper()
	t0 := time.Now()
	c0, err := lab.ProcCPU(a.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(d)
	c1, err := lab.ProcCPU(a.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	return float64(c1-c0) / float64(time.Since(t0)) * 100
}

// busyCPUs keeps every CPU busy with one spinning process each, for at most d;
// the returned func stops them sooner and waits for them.
func busyCPUs(b *testing.B, d time.Duration) func() {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	var cmds []*exec.Cmd
	for range runtime.NumCPU() {
		c := exec.CommandContext(ctx, "sh", "-c", "while :; do :; done")
		if err := c.Start(); err != nil {
			cancel()
			b.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	stop := func() {
		cancel()
		for _, c := range cmds {
			_ = c.Wait()
		}
	}
	b.Cleanup(stop)
	return stop
}
