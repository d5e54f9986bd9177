package bgp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/rpc"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/lab"
)

// helperArg is the first argument that turns the test binary into the router.
const helperArg = "raftvip-e2e-bgp-router"

// TestMain runs the router when the binary was started as one, else the tests.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == helperArg {
		if err := runHelper(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "router helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHelper serves one RPC client on a Unix socket at path and returns when that
// client disconnects.
func runHelper(path string) error {
	srv := rpc.NewServer()
	if err := srv.Register(&Router{}); err != nil {
		return err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	defer ln.Close()
	conn, err := ln.Accept()
	if err != nil {
		return err
	}
	srv.ServeConn(conn)
	return nil
}

// Router is the RPC service of the router process.
type Router struct {
	mu sync.Mutex
	rt *router
}

// AwaitArgs asks the router to wait until its RIB matches Want (prefix to the
// exact set of neighbors holding a path), with an event after Since.
type AwaitArgs struct {
	Want    map[netip.Prefix][]netip.Addr
	Since   time.Time
	Timeout time.Duration
}

// Start starts the router.
func (h *Router) Start(cfg RouterConfig, _ *struct{}) error {
	rt, err := startRouter(cfg)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.rt = rt
	h.mu.Unlock()
	return nil
}

// get returns the router or an error when none was started.
func (h *Router) get() (*router, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rt == nil {
		return nil, errors.New("no router started")
	}
	return h.rt, nil
}

// Paths lists the router's RIB.
func (h *Router) Paths(_ struct{}, reply *[]RoutePath) error {
	r, err := h.get()
	if err != nil {
		return err
	}
	*reply, err = r.paths(context.Background())
	return err
}

// Peers lists the router's neighbors.
func (h *Router) Peers(_ struct{}, reply *[]PeerView) error {
	r, err := h.get()
	if err != nil {
		return err
	}
	*reply, err = r.peers(context.Background())
	return err
}

// Await waits on the router's RIB and returns the arrival time of what made it match.
func (h *Router) Await(a AwaitArgs, reply *time.Time) error {
	r, err := h.get()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.Timeout)
	defer cancel()
	*reply, err = r.await(ctx, a.Want, a.Since)
	return err
}

// remote is the test's handle on the router process.
type remote struct {
	t    testing.TB
	proc *lab.Proc
	c    *rpc.Client
}

// startRemote starts the router process in ns and connects to it.
func startRemote(t testing.TB, l *lab.Lab, ns string) *remote {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	// A Unix socket path must stay under 108 bytes, which t.TempDir does not promise.
	dir, err := os.MkdirTemp("", "rve2ebgp")
	if err != nil {
		t.Fatalf("router socket dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "router.sock")
	r := &remote{t: t, proc: l.Start(ns, "router", exe, helperArg, sock)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := rpc.Dial("unix", sock)
		if err == nil {
			r.c = c
			break
		}
		if r.proc.Exited() || time.Now().After(deadline) {
			t.Fatalf("router: cannot connect (%v); log:\n%s", err, r.proc.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		_ = r.c.Close()
		if t.Failed() {
			t.Logf("router log tail:\n%s", tail(r.proc.Log(), 40))
		}
	})
	return r
}

// call calls method and fails the test on error, with the router's log.
func (r *remote) call(method string, args, reply any) {
	r.t.Helper()
	if err := r.c.Call("Router."+method, args, reply); err != nil {
		r.t.Fatalf("router.%s: %v; router log tail:\n%s", method, err, tail(r.proc.Log(), 30))
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
