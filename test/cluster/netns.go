package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` puts its namespace handles.
const netnsDir = "/run/netns"

// inNetNS runs fn on an OS thread switched into the named network namespace,
// so sockets fn creates live there; an empty name runs fn where we are. The
// thread switches back afterwards, or is discarded if it cannot.
func inNetNS(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- switchAndRun(name, fn)
	}()
	return <-errc
}

// switchAndRun must run on a locked thread; it unlocks it only when the
// thread is back in its own namespace.
func switchAndRun(name string, fn func() error) error {
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join(netnsDir, name))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %q: %w", name, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %q: setns: %w", name, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with this goroutine.
		return errors.Join(fnErr, fmt.Errorf("netns %q: switch back: %w", name, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// dialer connects from inside the named namespace (or here when empty), so
// the test process reaches an API server bound to a lab address without
// touching the root namespace's routes.
func dialer(name string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := inNetNS(name, func() error {
			var d net.Dialer
			var err error
			conn, err = d.DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
}

// freePort asks the kernel for an unused TCP port on host inside the named
// namespace. The port is free when this returns; a process started right
// after can bind it.
func freePort(netns, host string) (int, error) {
	var port int
	err := inNetNS(netns, func() error {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return err
		}
		port = l.Addr().(*net.TCPAddr).Port
		return l.Close()
	})
	if err != nil {
		return 0, fmt.Errorf("free port on %s: %w", host, err)
	}
	return port, nil
}

// freePorts returns one free port on each of hosts, in order.
func freePorts(netns string, hosts ...string) ([]int, error) {
	ports := make([]int, len(hosts))
	for i, h := range hosts {
		p, err := freePort(netns, h)
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	return ports, nil
}
