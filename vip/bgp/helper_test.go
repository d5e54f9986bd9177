// Go 1.24+ listeners default to Multipath TCP, and an MPTCP socket refuses
// TCP_MD5SIG and IP_TTL: gobgp's listener then cannot check peers' TCP MD5
// signatures. The test router listens, so the test binary turns it off, as
// the raftvip binary must.

//go:debug multipathtcp=0

package bgp

// Lab tests run every BGP speaker, and the router, in a helper process of
// its own, started inside its namespace with `ip netns exec`, and drive it
// over net/rpc on a Unix socket.
//
// Why not goroutines of the test process switched into namespaces with
// lab.RunInNS: a namespace belongs to an OS thread, and gobgp opens its
// sockets from goroutines it starts itself, which run on other threads, in
// the root namespace. Its listeners are created by the Serve loop goroutine
// (StartBgp is executed there), and each peer dials from a fresh connectLoop
// goroutine (pkg/server/fsm.go), so neither a passive nor an active side could
// be kept inside a lab namespace. gobgp also keeps route-selection options in
// package globals, shared by every server of a process. A process started by
// `ip netns exec` lives in the namespace as a whole, so all of gobgp's
// threads do. Path-bound Unix sockets are not tied to a network namespace,
// so the test reaches every helper from the root namespace.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// helperArg is the first argument that turns the test binary into a helper.
const helperArg = "raftvip-bgp-helper"

// TestMain runs the helper when the binary was started as one, else the tests.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == helperArg {
		if err := runHelper(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHelper serves one RPC client on a Unix socket at path and returns when
// that client disconnects.
func runHelper(path string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv := rpc.NewServer()
	if err := srv.Register(&Helper{log: log}); err != nil {
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

// Helper is the RPC service of a helper process: one Speaker or one router.
type Helper struct {
	log *slog.Logger
	mu  sync.Mutex
	sp  *Speaker
	rt  *router
}

// SpeakerArgs is Config without the logger, which cannot cross processes.
type SpeakerArgs struct {
	AS                 uint32
	RouterID           netip.Addr
	ListenPort         int32
	SourceAddress      netip.Addr
	NextHop4, NextHop6 netip.Addr
	Peers              []Peer
}

// Timing brackets a call made inside the helper, in wall-clock time, so the
// test can compare it with the router's arrival times.
type Timing struct {
	Start, End time.Time
}

// AwaitArgs asks the router to wait until its RIB matches Want (prefix to
// the exact set of neighbors holding a path), with an event after Since.
type AwaitArgs struct {
	Want    map[netip.Prefix][]netip.Addr
	Since   time.Time
	Timeout time.Duration
}

// StartSpeaker creates the helper's Speaker.
func (h *Helper) StartSpeaker(a SpeakerArgs, _ *struct{}) error {
	sp, err := New(Config{AS: a.AS, RouterID: a.RouterID, ListenPort: a.ListenPort, SourceAddress: a.SourceAddress,
		NextHop4: a.NextHop4, NextHop6: a.NextHop6, Peers: a.Peers, Logger: h.log})
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.sp = sp
	h.mu.Unlock()
	return nil
}

// speaker returns the Speaker or an error when none was started.
func (h *Helper) speaker() (*Speaker, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sp == nil {
		return nil, errors.New("no speaker started")
	}
	return h.sp, nil
}

// Set calls Speaker.Set.
func (h *Helper) Set(want map[netip.Addr]PathAttrs, reply *Timing) error {
	return h.timed(reply, func(s *Speaker) error { return s.Set(context.Background(), want) })
}

// WithdrawAll calls Speaker.WithdrawAll.
func (h *Helper) WithdrawAll(_ struct{}, reply *Timing) error {
	return h.timed(reply, func(s *Speaker) error { return s.WithdrawAll(context.Background()) })
}

// Close calls Speaker.Close.
func (h *Helper) Close(_ struct{}, reply *Timing) error {
	return h.timed(reply, func(s *Speaker) error { return s.Close(context.Background()) })
}

// timed runs fn on the Speaker and records when it ran.
func (h *Helper) timed(reply *Timing, fn func(*Speaker) error) error {
	s, err := h.speaker()
	if err != nil {
		return err
	}
	reply.Start = time.Now()
	err = fn(s)
	reply.End = time.Now()
	return err
}

// Sessions calls Speaker.Sessions.
func (h *Helper) Sessions(_ struct{}, reply *[]Session) error {
	s, err := h.speaker()
	if err != nil {
		return err
	}
	*reply, err = s.Sessions(context.Background())
	return err
}

// StartRouter creates the helper's router.
func (h *Helper) StartRouter(cfg RouterConfig, _ *struct{}) error {
	rt, err := startRouter(cfg, h.log)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.rt = rt
	h.mu.Unlock()
	return nil
}

// router returns the router or an error when none was started.
func (h *Helper) router() (*router, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rt == nil {
		return nil, errors.New("no router started")
	}
	return h.rt, nil
}

// Paths lists the router's RIB.
func (h *Helper) Paths(_ struct{}, reply *[]RoutePath) error {
	r, err := h.router()
	if err != nil {
		return err
	}
	*reply, err = r.paths(context.Background())
	return err
}

// Peers lists the router's neighbors.
func (h *Helper) Peers(_ struct{}, reply *[]PeerView) error {
	r, err := h.router()
	if err != nil {
		return err
	}
	*reply, err = r.peers(context.Background())
	return err
}

// Await waits on the router's RIB.
func (h *Helper) Await(a AwaitArgs, reply *time.Time) error {
	r, err := h.router()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.Timeout)
	defer cancel()
	*reply, err = r.await(ctx, a.Want, a.Since)
	return err
}

// remote is the test's handle on a helper process.
type remote struct {
	t    testing.TB
	name string
	proc *lab.Proc
	c    *rpc.Client
}

// socketDir makes a short directory for helper sockets (a Unix socket path
// must stay under 108 bytes, which t.TempDir does not promise).
func socketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rvbgp")
	if err != nil {
		t.Fatalf("socket dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// startHelper starts a helper process in ns and connects to it.
func startHelper(t testing.TB, l *lab.Lab, ns, name, dir string) *remote {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("helper %s: %v", name, err)
	}
	sock := filepath.Join(dir, name+".sock")
	r := &remote{t: t, name: name, proc: l.Start(ns, name, exe, helperArg, sock)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := rpc.Dial("unix", sock)
		if err == nil {
			r.c = c
			break
		}
		if r.proc.Exited() || time.Now().After(deadline) {
			t.Fatalf("helper %s: cannot connect (%v); log:\n%s", name, err, r.proc.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		_ = r.c.Close()
		if t.Failed() {
			t.Logf("helper %s log tail:\n%s", name, tail(r.proc.Log(), 40))
		}
	})
	return r
}

// try calls method and returns its error.
func (r *remote) try(method string, args, reply any) error {
	return r.c.Call("Helper."+method, args, reply)
}

// call calls method and fails the test on error, with the helper's log.
func (r *remote) call(method string, args, reply any) {
	r.t.Helper()
	if err := r.try(method, args, reply); err != nil {
		r.t.Fatalf("%s.%s: %v; helper log tail:\n%s", r.name, method, err, tail(r.proc.Log(), 30))
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
