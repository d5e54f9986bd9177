package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// process is one control-plane program: started (optionally inside a network
// namespace through `ip netns exec`), its output appended to a log file, and
// stopped with SIGTERM, then SIGKILL.
type process struct {
	name    string
	path    string
	args    []string
	netns   string
	logPath string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done closes
}

// start launches the program. The child gets SIGKILL if the test process dies,
// so a crashed test leaves no control plane behind.
func (p *process) start() error {
	if p.cmd != nil && !p.exited() {
		return fmt.Errorf("%s: already running", p.name)
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%s: log: %w", p.name, err)
	}
	fmt.Fprintf(logFile, "==== %s start %s\n", p.name, time.Now().Format(time.RFC3339Nano))
	name, args := p.path, p.args
	if p.netns != "" {
		name, args = "ip", append([]string{"netns", "exec", p.netns, p.path}, p.args...)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("%s: start: %w", p.name, err)
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return nil
}

// exited reports whether the program has stopped, for readiness loops that
// should give up as soon as it crashes.
func (p *process) exited() bool {
	if p.done == nil {
		return true
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitErr describes how the program ended; call it only once exited is true.
func (p *process) exitErr() error {
	if p.err == nil {
		return fmt.Errorf("%s exited", p.name)
	}
	return fmt.Errorf("%s exited: %w", p.name, p.err)
}

// stop sends SIGTERM, waits up to grace, then kills. Stopping a program that
// never started or already exited is a no-op.
func (p *process) stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: sigterm: %w", p.name, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	return p.kill()
}

// kill sends SIGKILL to the program's process group and waits for it.
func (p *process) kill() error {
	if p.exited() {
		return nil
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s: sigkill: %w", p.name, err)
	}
	<-p.done
	return nil
}

// logTail returns the last lines of the program's log for failure reports.
func (p *process) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return lastLines(string(b), n)
}
