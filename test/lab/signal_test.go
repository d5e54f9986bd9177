package lab

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// signalHelperEnv makes the test binary build a lab and wait to be signalled,
// so TestSignalTearsDown can check the handler in a separate process.
const signalHelperEnv = "RAFTVIP_LAB_SIGNAL_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(signalHelperEnv) != "" {
		signalHelper()
		return
	}
	os.Exit(m.Run())
}

// helperTB is the minimum of testing.TB that New needs outside a test.
type helperTB struct {
	testing.TB
	dir string
}

func (h *helperTB) Helper()             {}
func (h *helperTB) Logf(string, ...any) {}
func (h *helperTB) Cleanup(func())      {}
func (h *helperTB) TempDir() string     { return h.dir }
func (h *helperTB) Errorf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, f+"\n", a...)
}
func (h *helperTB) Fatalf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, f+"\n", a...)
	os.Exit(3)
}

func signalHelper() {
	dir, err := os.MkdirTemp("", "labsignal")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	l := New(&helperTB{dir: dir}, 1)
	p := l.Start(l.Node(0), "sleeper", "sleep", "600")
	fmt.Printf("%s %d\n", l.Prefix(), p.Pid())
	select {}
}

func TestSignalTearsDown(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), signalHelperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var prefix string
	var pid int
	line, err := bufio.NewReader(out).ReadString('\n')
	if _, serr := fmt.Sscanf(line, "%s %d", &prefix, &pid); err != nil || serr != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper said %q (%v, %v); stderr: %s", line, err, serr, stderr.String())
	}
	t.Cleanup(func() {
		for _, ns := range listNamespaces(prefix + "-") {
			_ = deleteNamespace(ns)
		}
		_ = removeMarker(prefix)
	})
	if got := listNamespaces(prefix + "-"); len(got) != 3 {
		t.Fatalf("helper lab namespaces = %v, want hub, client and one node", got)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 2 {
		t.Errorf("helper exit = %v, want status 2 from the signal handler; stderr: %s", err, stderr.String())
	}
	if got := listNamespaces(prefix + "-"); len(got) != 0 {
		t.Errorf("namespaces left after SIGTERM: %v", got)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("lab process %d survives its test process (kill 0: %v)", pid, err)
	}
}

// recordingTB keeps what a lab logs, to check WithProcessLogs.
type recordingTB struct {
	*testing.T
	mu   sync.Mutex
	logs []string
}

func (r *recordingTB) Logf(f string, a ...any) {
	r.mu.Lock()
	r.logs = append(r.logs, fmt.Sprintf(f, a...))
	r.mu.Unlock()
}

func (r *recordingTB) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.logs...)
}

func (r *recordingTB) contains(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.logs {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func TestProcessLogsMirrored(t *testing.T) {
	t.Parallel()
	rec := &recordingTB{T: t}
	l := New(rec, 1, WithProcessLogs())
	p := l.Start(l.Node(0), "talker", "sh", "-c", "echo mirrored-line; echo to-stderr >&2")
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !rec.contains("[talker] mirrored-line") || !rec.contains("[talker] to-stderr") {
		if time.Now().After(deadline) {
			t.Fatalf("process output not mirrored into the test log: %q", rec.snapshot())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if log := p.Log(); !strings.Contains(log, "mirrored-line") || !strings.Contains(log, "to-stderr") {
		t.Errorf("log file lacks the output: %q", log)
	}
}
