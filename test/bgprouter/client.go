package bgprouter

import (
	"net/netip"
	"net/rpc"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/lab"
)

// Process is the test's handle on a helper process: the test binary
// re-executed inside a lab namespace, serving RPC on a Unix socket (see
// HelperMain).
type Process struct {
	name string
	proc *lab.Proc
	c    *rpc.Client
}

// SocketDir makes a short directory for helper sockets, removed when the
// test ends (a Unix socket path must stay under 108 bytes, which t.TempDir
// does not promise).
func SocketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rvbgp")
	if err != nil {
		t.Fatalf("socket dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// StartProcess starts a helper process called name in ns, with its socket in
// dir (from SocketDir), and connects to it. When the test fails, the
// process's log tail goes to the test log.
func StartProcess(t testing.TB, l *lab.Lab, ns, name, dir string) *Process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("helper %s: %v", name, err)
	}
	sock := filepath.Join(dir, name+".sock")
	p := &Process{name: name, proc: l.Start(ns, name, exe, helperArg, sock)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := rpc.Dial("unix", sock)
		if err == nil {
			p.c = c
			break
		}
		if p.proc.Exited() || time.Now().After(deadline) {
			t.Fatalf("helper %s: cannot connect (%v); log:\n%s", name, err, p.proc.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		_ = p.c.Close()
		if t.Failed() {
			t.Logf("helper %s log tail:\n%s", name, tail(p.proc.Log(), 40))
		}
	})
	return p
}

// Try calls method ("Service.Method") and returns its error.
func (p *Process) Try(method string, args, reply any) error {
	return p.c.Call(method, args, reply)
}

// Call calls method ("Service.Method") and fails the test on error, with the
// helper's log tail.
func (p *Process) Call(t testing.TB, method string, args, reply any) {
	t.Helper()
	if err := p.Try(method, args, reply); err != nil {
		t.Fatalf("%s: %s: %v; helper log tail:\n%s", p.name, method, err, tail(p.proc.Log(), 30))
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

// Remote is a router running in a helper process.
type Remote struct {
	*Process
	// neighbors are the neighbors' addresses in Config order: tests name
	// their speakers by index there (AwaitHosts, HostPaths).
	neighbors []netip.Addr
}

// StartRemote starts a helper process called "router" in ns, with its socket
// in dir, and a router with cfg in it.
func StartRemote(t testing.TB, l *lab.Lab, ns, dir string, cfg Config) *Remote {
	t.Helper()
	r := &Remote{Process: StartProcess(t, l, ns, "router", dir)}
	for _, n := range cfg.Neighbors {
		r.neighbors = append(r.neighbors, n.Address)
	}
	r.Call(t, serviceName+".Start", cfg, &struct{}{})
	return r
}

// hostPrefix is the host prefix (/32 or /128) of a.
func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// AwaitHosts waits until, for each VIP in want, the router holds paths for
// its host prefix from exactly the listed neighbors, named by their index in
// Config.Neighbors (none: the prefix is absent). Since and timeout, and what
// it returns, are Await's.
func (r *Remote) AwaitHosts(t testing.TB, want map[netip.Addr][]int, since time.Time, timeout time.Duration) time.Time {
	t.Helper()
	args := AwaitArgs{Want: View{}, Since: since, Timeout: timeout}
	for vip, idx := range want {
		ns := []netip.Addr{}
		for _, i := range idx {
			ns = append(ns, r.neighbors[i])
		}
		args.Want[hostPrefix(vip)] = ns
	}
	return r.Await(t, args)
}

// HostPaths returns the router's paths for vip's host prefix, keyed by the
// index of the neighbor that sent each in Config.Neighbors; a path from any
// other neighbor fails the test.
func (r *Remote) HostPaths(t testing.TB, vip netip.Addr) map[int]Path {
	t.Helper()
	out := map[int]Path{}
	for _, p := range r.Paths(t) {
		if p.Prefix != hostPrefix(vip) {
			continue
		}
		i := slices.Index(r.neighbors, p.Neighbor)
		if i < 0 {
			t.Fatalf("path for %s from unknown neighbor %s", vip, p.Neighbor)
		}
		out[i] = p
	}
	return out
}

// Paths lists the router's RIB (see Router.Paths).
func (r *Remote) Paths(t testing.TB) []Path {
	t.Helper()
	var out []Path
	r.Call(t, serviceName+".Paths", struct{}{}, &out)
	return out
}

// Peers lists the router's neighbors (see Router.Peers).
func (r *Remote) Peers(t testing.TB) []PeerView {
	t.Helper()
	var out []PeerView
	r.Call(t, serviceName+".Peers", struct{}{}, &out)
	return out
}

// Await waits until the router's RIB matches a.Want and returns the arrival
// time of what made it match (see Router.Await); it fails the test when
// a.Timeout passes first.
func (r *Remote) Await(t testing.TB, a AwaitArgs) time.Time {
	t.Helper()
	var at time.Time
	r.Call(t, serviceName+".Await", a, &at)
	return at
}
