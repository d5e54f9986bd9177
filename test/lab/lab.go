// Package lab builds throw-away Linux network labs out of network namespaces
// for raftvip's end-to-end tests and benchmarks: one namespace per node, a
// client namespace, and a hub namespace whose bridge joins them into one L2
// segment. Nothing is created in, or changed about, the root namespace: veth
// pairs are created inside the hub namespace with their far end placed
// straight into the node's namespace.
//
// Addressing (i counts nodes from 0):
//
//	node i   eth0  198.51.100.(11+i)/24  2001:db8:100::(11+i)/64  MAC 02:72:76:00:00:(11+i)
//	client   eth0  198.51.100.50/24      2001:db8:100::50/64      MAC 02:72:76:00:00:50
//
// where the IPv6 and MAC suffixes are the same decimal digits read as hex.
// Every lab gets a random name prefix ("rv" and five characters) so parallel
// runs never collide, and removes everything on test cleanup, even after a
// failure or panic. A SIGINT or SIGTERM to the test process tears down its
// labs before exiting, and New sweeps namespaces left by dead runs.
package lab

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// MaxNodes is how many nodes fit below the client's address.
	MaxNodes = 38
	// bridge is the name of the bridge inside the hub namespace.
	bridge = "br0"
	// Iface is the name of the lab interface inside node and client namespaces.
	Iface = "eth0"
	// readyTimeout bounds waiting for the fresh lab to pass traffic.
	readyTimeout = 15 * time.Second
)

// TB is the part of testing.TB a lab uses, so `make demo` can build a lab outside
// `go test` with its own failure and cleanup handling.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// Option changes how New builds a lab.
type Option func(*config)

type config struct {
	ipv6     bool
	procLogs bool
}

// WithoutIPv6 builds an IPv4-only lab: IPv6 is disabled in every namespace,
// for tests of what must fail or be skipped without IPv6.
func WithoutIPv6() Option { return func(c *config) { c.ipv6 = false } }

// WithProcessLogs mirrors the output of processes started with Start into the
// test log, line by line, besides their log files.
func WithProcessLogs() Option { return func(c *config) { c.procLogs = true } }

// Lab is one isolated L2 segment of node namespaces and a client namespace.
// Its methods are safe for concurrent use; those that fail the test on error
// must be called from the test's goroutine.
type Lab struct {
	t      TB
	cfg    config
	prefix string
	dir    string
	hub    string
	client string
	nodes  []string

	mu         sync.Mutex
	closed     bool
	created    []string
	procs      []*Proc
	procNames  map[string]int
	closers    []func()
	partitions []dropRule
}

// dropRule is a source prefix a Partition rule drops in one namespace.
type dropRule struct {
	ns  string
	src netip.Prefix
}

// New builds a lab with the given number of nodes and registers its removal
// with t.Cleanup. It fails the test if the lab cannot be built (for example
// when not running as root).
func New(t TB, nodes int, opts ...Option) *Lab {
	t.Helper()
	if nodes < 1 || nodes > MaxNodes {
		t.Fatalf("lab: %d nodes requested, want 1..%d", nodes, MaxNodes)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("lab: network namespaces need root (euid %d)", os.Geteuid())
	}
	cfg := config{ipv6: true}
	for _, o := range opts {
		o(&cfg)
	}
	sweepOnce.Do(func() {
		if err := sweepStale(staleAge); err != nil {
			t.Logf("lab: sweeping stale namespaces: %v", err)
		}
	})
	prefix := newPrefix()
	l := &Lab{
		t:         t,
		cfg:       cfg,
		prefix:    prefix,
		dir:       t.TempDir(),
		hub:       prefix + "-hub",
		client:    prefix + "-cl",
		procNames: map[string]int{},
	}
	for i := range nodes {
		l.nodes = append(l.nodes, prefix+"-n"+strconv.Itoa(i))
	}
	register(l)
	t.Cleanup(l.close)
	if err := writeMarker(prefix); err != nil {
		t.Fatalf("lab: %v", err)
	}
	if err := l.build(); err != nil {
		t.Fatalf("lab %s: %v", prefix, err)
	}
	t.Logf("lab %s: %d nodes, IPv6 %v, logs in %s", prefix, nodes, cfg.ipv6, l.dir)
	return l
}

// newPrefix returns "rv" and five random lowercase letters or digits.
func newPrefix() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("lab: random prefix: %v", err))
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "rv" + string(b)
}

// build creates the namespaces, the bridge and the veth pairs.
func (l *Lab) build() error {
	all := append([]string{l.hub, l.client}, l.nodes...)
	for _, ns := range all {
		if err := l.addNS(ns); err != nil {
			return err
		}
	}
	if err := l.sysctls(l.hub, false); err != nil {
		return err
	}
	if err := l.ip(l.hub, "link", "add", bridge, "type", "bridge",
		"stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"); err != nil {
		return err
	}
	if err := l.ip(l.hub, "link", "set", bridge, "up"); err != nil {
		return err
	}
	for i := range l.nodes {
		if err := l.attach(l.nodes[i], hubPort(i), 11+i); err != nil {
			return err
		}
	}
	if err := l.attach(l.client, "cl", 50); err != nil {
		return err
	}
	return l.waitReady()
}

// hubPort is the name of node i's veth end inside the hub namespace.
func hubPort(i int) string { return "n" + strconv.Itoa(i) }

// addNS creates a named namespace and records it for removal.
func (l *Lab) addNS(ns string) error {
	if _, err := run("ip", "netns", "add", ns); err != nil {
		return err
	}
	l.mu.Lock()
	l.created = append(l.created, ns)
	l.mu.Unlock()
	return l.ip(ns, "link", "set", "lo", "up")
}

// sysctls disables DAD (addresses usable at once) and, for an IPv4-only lab
// or the hub, IPv6 altogether. Run before interfaces are moved in so the
// defaults apply to them.
func (l *Lab) sysctls(ns string, ipv6 bool) error {
	args := []string{"sysctl", "-q", "-w",
		"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"}
	if !ipv6 {
		args = append(args, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	_, err := l.Exec(ns, args...)
	return err
}

// attach creates a veth pair from the hub bridge into ns, named eth0 there,
// with the lab addresses whose last part is host.
func (l *Lab) attach(ns, port string, host int) error {
	if err := l.sysctls(ns, l.cfg.ipv6); err != nil {
		return err
	}
	steps := [][]string{
		{l.hub, "link", "add", port, "type", "veth", "peer", "name", Iface, "netns", ns},
		{l.hub, "link", "set", port, "master", bridge, "up"},
		{ns, "link", "set", Iface, "address", hostMAC(host).String()},
		{ns, "addr", "add", hostIP(host).String() + "/24", "dev", Iface},
	}
	if l.cfg.ipv6 {
		steps = append(steps, []string{ns, "addr", "add", hostIP6(host).String() + "/64", "dev", Iface, "nodad"})
	}
	steps = append(steps, []string{ns, "link", "set", Iface, "up"})
	for _, s := range steps {
		if err := l.ip(s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// waitReady pings every node from the client until each answers.
func (l *Lab) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	for i := range l.nodes {
		targets := []netip.Addr{l.NodeIP(i)}
		if l.cfg.ipv6 {
			targets = append(targets, l.NodeIP6(i))
		}
		for _, ip := range targets {
			for {
				_, err := l.Exec(l.client, "ping", "-c", "1", "-W", "1", "-q", ip.String())
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("node %d (%s) does not answer the client: %w", i, ip, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	return nil
}

// ip runs `ip -n ns args...`.
func (l *Lab) ip(ns string, args ...string) error {
	_, err := run("ip", append([]string{"-n", ns}, args...)...)
	return err
}

func hostIP(host int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 51, 100, byte(host)})
}

func hostIP6(host int) netip.Addr {
	return netip.MustParseAddr("2001:db8:100::" + strconv.Itoa(host))
}

func hostMAC(host int) net.HardwareAddr {
	v, err := strconv.ParseUint(strconv.Itoa(host), 16, 8)
	if err != nil {
		panic(fmt.Sprintf("lab: host number %d: %v", host, err))
	}
	return net.HardwareAddr{0x02, 0x72, 0x76, 0, 0, byte(v)}
}

// Prefix is the lab's unique name prefix; every namespace name starts with it.
func (l *Lab) Prefix() string { return l.prefix }

// Dir is the lab's log directory (process logs live here).
func (l *Lab) Dir() string { return l.dir }

// Nodes is the number of nodes.
func (l *Lab) Nodes() int { return len(l.nodes) }

// IPv6 reports whether the lab has IPv6 addresses.
func (l *Lab) IPv6() bool { return l.cfg.ipv6 }

// Node returns the namespace name of node i (from 0).
func (l *Lab) Node(i int) string {
	l.checkNode(i)
	return l.nodes[i]
}

// NodeIndex maps a node namespace name back to its index, or -1.
func (l *Lab) NodeIndex(ns string) int {
	for i, n := range l.nodes {
		if n == ns {
			return i
		}
	}
	return -1
}

// Client returns the client namespace name.
func (l *Lab) Client() string { return l.client }

// Hub returns the namespace holding the bridge.
func (l *Lab) Hub() string { return l.hub }

// NodeIP is node i's IPv4 address, 198.51.100.(11+i).
func (l *Lab) NodeIP(i int) netip.Addr { l.checkNode(i); return hostIP(11 + i) }

// NodeIP6 is node i's IPv6 address, 2001:db8:100::(11+i).
func (l *Lab) NodeIP6(i int) netip.Addr { l.checkNode(i); return hostIP6(11 + i) }

// NodeMAC is the hardware address of node i's eth0.
func (l *Lab) NodeMAC(i int) net.HardwareAddr { l.checkNode(i); return hostMAC(11 + i) }

// ClientIP is the client's IPv4 address, 198.51.100.50.
func (l *Lab) ClientIP() netip.Addr { return hostIP(50) }

// ClientIP6 is the client's IPv6 address, 2001:db8:100::50.
func (l *Lab) ClientIP6() netip.Addr { return hostIP6(50) }

// ClientMAC is the hardware address of the client's eth0.
func (l *Lab) ClientMAC() net.HardwareAddr { return hostMAC(50) }

func (l *Lab) checkNode(i int) {
	if i < 0 || i >= len(l.nodes) {
		panic(fmt.Sprintf("lab: node %d out of range (lab has %d)", i, len(l.nodes)))
	}
}

// addCloser registers fn to run at cleanup before processes are killed and
// namespaces removed. It reports false, without registering, once the lab is
// closed.
func (l *Lab) addCloser(fn func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.closers = append(l.closers, fn)
	return true
}

// close tears the lab down: closers, processes, namespaces, marker. It also
// runs from the signal handler, so it must not call t methods after failing.
func (l *Lab) close() {
	errs := l.teardown()
	for _, err := range errs {
		l.t.Errorf("lab %s cleanup: %v", l.prefix, err)
	}
	if left := listNamespaces(l.prefix + "-"); len(left) > 0 {
		l.t.Errorf("lab %s cleanup: namespaces left behind: %s", l.prefix, strings.Join(left, " "))
	}
}

// teardown is close without reporting; it is idempotent.
func (l *Lab) teardown() []error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	closers, procs, created := l.closers, l.procs, l.created
	l.mu.Unlock()
	unregister(l)

	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	for _, p := range procs {
		p.Kill()
	}
	var errs []error
	for i := len(created) - 1; i >= 0; i-- {
		if err := deleteNamespace(created[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeMarker(l.prefix); err != nil {
		errs = append(errs, err)
	}
	return errs
}
