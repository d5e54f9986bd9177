package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func shProcess(t *testing.T, script string) *process {
	t.Helper()
	p := &process{name: "sh", path: "/bin/sh", args: []string{"-c", script}, logPath: filepath.Join(t.TempDir(), "sh.log")}
	t.Cleanup(func() { _ = p.kill() })
	return p
}

func waitExited(t *testing.T, p *process) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatalf("%s did not exit", p.name)
	}
}

func TestProcessLogsAndExit(t *testing.T) {
	p := shProcess(t, "echo out; echo err >&2; exit 3")
	if !p.exited() {
		t.Fatal("a process never started reports running")
	}
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	waitExited(t, p)
	if err := p.exitErr(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("exitErr = %v, want exit status 3", err)
	}
	log := p.logTail(10)
	for _, want := range []string{"==== sh start", "out", "err"} {
		if !strings.Contains(log, want) {
			t.Errorf("log %q lacks %q", log, want)
		}
	}
	if err := p.stop(time.Second); err != nil {
		t.Fatalf("stopping an exited process: %v", err)
	}
}

func TestProcessRestartAppendsLog(t *testing.T) {
	p := shProcess(t, "echo run")
	for range 2 {
		if err := p.start(); err != nil {
			t.Fatal(err)
		}
		waitExited(t, p)
	}
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "==== sh start"); n != 2 {
		t.Fatalf("%d start markers in %q, want 2 (log appended across restarts)", n, b)
	}
}

func TestProcessStartTwiceRefused(t *testing.T) {
	p := shProcess(t, "sleep 60")
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	if err := p.start(); err == nil {
		t.Fatal("second start of a running process accepted")
	}
}

func TestProcessStopGraceful(t *testing.T) {
	p := shProcess(t, "trap 'echo bye; exit 0' TERM; while :; do sleep 0.05; done")
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, p, "==== sh start")
	time.Sleep(200 * time.Millisecond) // let the shell install its trap
	if err := p.stop(time.Minute); err != nil {
		t.Fatal(err)
	}
	if !p.exited() {
		t.Fatal("running after stop")
	}
	if !strings.Contains(p.logTail(5), "bye") {
		t.Fatalf("SIGTERM handler did not run; log %q", p.logTail(5))
	}
}

func TestProcessStopKillsStubbornProgram(t *testing.T) {
	p := shProcess(t, "trap '' TERM; echo ready; while :; do sleep 0.05; done")
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, p, "ready")
	if err := p.stop(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if !p.exited() {
		t.Fatal("running after stop")
	}
	if err := p.exitErr(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("exitErr = %v, want killed", err)
	}
}

func TestProcessKillTakesItsChildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	p := shProcess(t, "sleep 600 & echo $! > "+pidFile+"; echo ready; wait")
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, p, "ready")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.kill(); err != nil {
		t.Fatal(err)
	}
	childProc := filepath.Join("/proc", strings.TrimSpace(string(b)))
	eventually(t, "child gone", func() (bool, error) {
		st, err := os.ReadFile(filepath.Join(childProc, "stat"))
		// Gone, or a zombie waiting for init to reap it.
		return err != nil || strings.Contains(string(st), ") Z "), nil
	})
}

func TestProcessStartMissingBinary(t *testing.T) {
	p := &process{name: "nope", path: "/nonexistent/binary", logPath: filepath.Join(t.TempDir(), "nope.log")}
	if err := p.start(); err == nil {
		t.Fatal("missing binary started")
	}
	if !p.exited() {
		t.Fatal("failed start reports running")
	}
}

func waitForLog(t *testing.T, p *process, want string) {
	t.Helper()
	eventually(t, "log line "+want, func() (bool, error) {
		return strings.Contains(p.logTail(20), want), nil
	})
}
