package lab

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// captureStartTimeout bounds waiting for tcpdump to report it is listening.
const captureStartTimeout = 10 * time.Second

// Capture collects tcpdump's one-line packet summaries from a lab interface.
type Capture struct {
	cmd  *exec.Cmd
	done chan struct{}
	stop sync.Once

	mu     sync.Mutex
	lines  []string
	notify chan struct{}
}

// Capture starts `tcpdump -l -n -e --immediate-mode -i iface filter` inside
// ns and returns once tcpdump listens, so no packet sent afterwards is missed.
// It fails the test if tcpdump does not start. The lab stops it on cleanup.
func (l *Lab) Capture(ns, iface, filter string) *Capture {
	l.t.Helper()
	args := []string{"netns", "exec", ns, "tcpdump", "-l", "-n", "-e", "--immediate-mode", "-i", iface}
	if filter != "" {
		args = append(args, filter)
	}
	c := &Capture{
		cmd:    exec.Command("ip", args...),
		done:   make(chan struct{}),
		notify: make(chan struct{}),
	}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		l.t.Fatalf("lab: capture: %v", err)
	}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		l.t.Fatalf("lab: capture: %v", err)
	}
	if err := c.cmd.Start(); err != nil {
		l.t.Fatalf("lab: capture on %s/%s: %v", ns, iface, err)
	}
	listening := make(chan struct{})
	var errLines []string
	var errMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			errMu.Lock()
			errLines = append(errLines, sc.Text())
			errMu.Unlock()
			if !signalled && strings.Contains(sc.Text(), "listening on") {
				signalled = true
				close(listening)
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			close(c.notify)
			c.notify = make(chan struct{})
			c.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = c.cmd.Wait()
		close(c.done)
	}()
	if !l.addCloser(func() { c.Stop() }) {
		c.Stop()
		l.t.Fatalf("lab: capture after cleanup")
	}
	select {
	case <-listening:
	case <-c.done:
		errMu.Lock()
		defer errMu.Unlock()
		l.t.Fatalf("lab: tcpdump on %s/%s exited: %s", ns, iface, strings.Join(errLines, "; "))
	case <-time.After(captureStartTimeout):
		c.Stop()
		l.t.Fatalf("lab: tcpdump on %s/%s not listening after %v", ns, iface, captureStartTimeout)
	}
	return c
}

// Lines returns the lines captured so far.
func (c *Capture) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// WaitFor blocks until a captured line satisfies match or ctx ends, and
// returns that line.
func (c *Capture) WaitFor(ctx context.Context, match func(line string) bool) (string, bool) {
	seen := 0
	for {
		c.mu.Lock()
		lines, notify := c.lines, c.notify
		c.mu.Unlock()
		for ; seen < len(lines); seen++ {
			if match(lines[seen]) {
				return lines[seen], true
			}
		}
		select {
		case <-notify:
		case <-c.done:
			c.mu.Lock()
			n := len(c.lines)
			c.mu.Unlock()
			if seen == n {
				return "", false
			}
		case <-ctx.Done():
			return "", false
		}
	}
}

// Stop ends tcpdump (letting it flush) and returns every captured line.
func (c *Capture) Stop() []string {
	c.stop.Do(func() {
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c.Lines()
}
