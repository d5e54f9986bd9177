package lab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

const (
	// StopTimeout bounds how long Stop waits after SIGTERM before SIGKILL.
	StopTimeout = 10 * time.Second
	// waitDelay bounds waiting for output pipes after a process exits (a
	// grandchild may hold them open).
	waitDelay = 2 * time.Second
)

// Exec runs a command inside ns (`ip netns exec ns args...`) and returns its
// combined output. The error carries the command and its output.
func (l *Lab) Exec(ns string, args ...string) (string, error) {
	return run("ip", append([]string{"netns", "exec", ns}, args...)...)
}

// Proc is a long-running process started inside a lab namespace. Its output
// goes to a log file in the lab directory (and to the test log with
// WithProcessLogs). The lab kills it on cleanup if it still runs.
type Proc struct {
	// Name is the name given to Start (made unique within the lab).
	Name string
	// NS is the namespace the process runs in.
	NS string

	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// Start runs args inside ns in its own process group. It fails the test if
// the process cannot be started.
func (l *Lab) Start(ns, name string, args ...string) *Proc {
	l.t.Helper()
	if len(args) == 0 {
		l.t.Fatalf("lab: Start %q: no command", name)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.t.Fatalf("lab: Start %q after cleanup", name)
	}
	l.procNames[name]++
	if n := l.procNames[name]; n > 1 {
		name += "-" + strconv.Itoa(n)
	}
	l.mu.Unlock()

	p := &Proc{Name: name, NS: ns, logPath: filepath.Join(l.dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.logPath)
	if err != nil {
		l.t.Fatalf("lab: Start %q: %v", name, err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = waitDelay
	var mirror *io.PipeWriter
	if l.cfg.procLogs {
		pr, pw := io.Pipe()
		mirror = pw
		cmd.Stdout = io.MultiWriter(f, pw)
		go l.mirrorLines(name, pr)
	} else {
		cmd.Stdout = f
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		if mirror != nil {
			_ = mirror.Close()
		}
		l.t.Fatalf("lab: Start %q in %s: %v", name, ns, err)
	}
	p.cmd = cmd
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		if mirror != nil {
			_ = mirror.Close()
		}
		close(p.done)
	}()
	l.mu.Lock()
	closed := l.closed
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	if closed {
		p.Kill()
	}
	return p
}

// mirrorLines copies a process's output into the test log until the lab
// closes (the testing package forbids logging after the test ends).
func (l *Lab) mirrorLines(name string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		l.mu.Lock()
		closed := l.closed
		l.mu.Unlock()
		if !closed {
			l.t.Logf("[%s] %s", name, sc.Text())
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// Pid is the process id (the command itself: `ip netns exec` execs it).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait blocks until the process exits and returns its exit error.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Signal sends sig to the process group.
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	err := syscall.Kill(-p.cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// Kill sends SIGKILL to the process group and waits for the exit.
func (p *Proc) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM, waits up to StopTimeout, then kills. It returns the
// process's exit error (nil for a clean exit after SIGTERM).
func (p *Proc) Stop() error {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop %s: %w", p.Name, err)
	}
	select {
	case <-p.done:
	case <-time.After(StopTimeout):
		p.Kill()
		return fmt.Errorf("stop %s: still running %v after SIGTERM, killed", p.Name, StopTimeout)
	}
	return p.err
}

// LogPath is the file the process's output goes to.
func (p *Proc) LogPath() string { return p.logPath }

// Log returns the process's output so far.
func (p *Proc) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(log %s unreadable: %v)", p.logPath, err)
	}
	return string(b)
}
