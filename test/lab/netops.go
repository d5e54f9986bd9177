package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"

	"github.com/vishvananda/netns"
)

// CutLink takes node i's port on the hub bridge down: the node keeps running
// and keeps its addresses but loses carrier, as if its cable were pulled.
func (l *Lab) CutLink(i int) {
	l.t.Helper()
	l.checkNode(i)
	if err := l.ip(l.hub, "link", "set", hubPort(i), "down"); err != nil {
		l.t.Fatalf("lab: cut link of node %d: %v", i, err)
	}
}

// RestoreLink brings node i's hub port back up.
func (l *Lab) RestoreLink(i int) {
	l.t.Helper()
	l.checkNode(i)
	if err := l.ip(l.hub, "link", "set", hubPort(i), "up"); err != nil {
		l.t.Fatalf("lab: restore link of node %d: %v", i, err)
	}
}

// Partition cuts IP traffic between node i and the nodes in from (every other
// node when from is empty), in both directions, while all of them still reach
// and are reached by the client. Packets are dropped silently on arrival, so
// senders see timeouts as on a real network split, not errors: each side gets
// a policy rule `from <peer's node address> blackhole` ahead of the local
// table. Traffic from a peer to any address of the node, VIPs included, is
// dropped. Heal removes the rules.
func (l *Lab) Partition(i int, from ...int) {
	l.t.Helper()
	l.checkNode(i)
	if len(from) == 0 {
		for j := range l.nodes {
			if j != i {
				from = append(from, j)
			}
		}
	}
	for _, j := range from {
		l.checkNode(j)
		if j == i {
			l.t.Fatalf("lab: partition node %d from itself", i)
		}
		l.dropFrom(l.nodes[i], j)
		l.dropFrom(l.nodes[j], i)
	}
}

// partitionPref is the rule priority of partition rules; the local table's
// rule moves from 0 to localPref behind them.
const (
	partitionPref = "10"
	localPref     = "100"
)

// dropFrom makes ns drop every packet arriving from node j's addresses.
func (l *Lab) dropFrom(ns string, j int) {
	l.t.Helper()
	srcs := []netip.Addr{l.NodeIP(j)}
	if l.cfg.ipv6 {
		srcs = append(srcs, l.NodeIP6(j))
	}
	for _, src := range srcs {
		fam := "-4"
		if src.Is6() {
			fam = "-6"
		}
		if err := l.moveLocalRule(ns, fam); err != nil {
			l.t.Fatalf("lab: partition: %v", err)
		}
		r := dropRule{ns: ns, src: netip.PrefixFrom(src, src.BitLen())}
		l.mu.Lock()
		dup := slices.Contains(l.partitions, r)
		if !dup {
			l.partitions = append(l.partitions, r)
		}
		l.mu.Unlock()
		if dup {
			continue
		}
		if err := l.ip(ns, fam, "rule", "add", "pref", partitionPref, "from", r.src.String(), "blackhole"); err != nil {
			l.t.Fatalf("lab: partition: %v", err)
		}
	}
}

// moveLocalRule puts the local table's rule behind the partition rules (it
// sits at priority 0, before anything that can be added), once per family.
func (l *Lab) moveLocalRule(ns, fam string) error {
	out, err := run("ip", "-n", ns, fam, "rule", "show", "pref", "0")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "lookup local") {
		return nil
	}
	if err := l.ip(ns, fam, "rule", "add", "pref", localPref, "lookup", "local"); err != nil {
		return err
	}
	return l.ip(ns, fam, "rule", "del", "pref", "0", "lookup", "local")
}

// Heal removes every rule Partition installed.
func (l *Lab) Heal() {
	l.t.Helper()
	l.mu.Lock()
	rules := l.partitions
	l.partitions = nil
	l.mu.Unlock()
	var errs []error
	for _, r := range rules {
		fam := "-4"
		if r.src.Addr().Is6() {
			fam = "-6"
		}
		if err := l.ip(r.ns, fam, "rule", "del", "pref", partitionPref, "from", r.src.String(), "blackhole"); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		l.t.Fatalf("lab: heal: %v", err)
	}
}

// neighEntry is one element of `ip -j neigh show`.
type neighEntry struct {
	Dst    string   `json:"dst"`
	Dev    string   `json:"dev"`
	LLAddr string   `json:"lladdr"`
	State  []string `json:"state"`
}

// Neigh returns the neighbour table entry for ip in ns: the cached hardware
// address (nil while unresolved) and the state (REACHABLE, STALE, ...). It
// is an error when there is no entry.
func (l *Lab) Neigh(ns string, ip netip.Addr) (net.HardwareAddr, string, error) {
	out, err := run("ip", "-n", ns, "-j", "neigh", "show", "to", ip.String())
	if err != nil {
		return nil, "", err
	}
	var entries []neighEntry
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		return nil, "", fmt.Errorf("parse neighbour table of %s: %w (%q)", ns, err, out)
	}
	for _, e := range entries {
		if e.Dst != ip.String() {
			continue
		}
		state := strings.Join(e.State, ",")
		if e.LLAddr == "" {
			return nil, state, nil
		}
		mac, err := net.ParseMAC(e.LLAddr)
		if err != nil {
			return nil, state, fmt.Errorf("neighbour %s in %s: %w", ip, ns, err)
		}
		return mac, state, nil
	}
	return nil, "", fmt.Errorf("no neighbour entry for %s in %s", ip, ns)
}

// RunInNS runs fn on an OS thread inside ns, for Go code that must open
// sockets or use netlink there. Sockets fn opens stay in ns after it returns;
// goroutines fn starts do not inherit the namespace. fn runs on a fresh
// goroutine whose thread is discarded if it cannot be switched back.
func (l *Lab) RunInNS(ns string, fn func() error) error {
	return RunInNS(ns, fn)
}

// RunInNS is Lab.RunInNS for callers that hold only a namespace name.
func RunInNS(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- switchAndRun(ns, fn)
	}()
	return <-errc
}

// switchAndRun runs on a locked thread and unlocks it only once the thread is
// back in its original namespace.
func switchAndRun(ns string, fn func() error) error {
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: current: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %q: %w", ns, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %q: enter: %w", ns, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		return errors.Join(fnErr, fmt.Errorf("netns %q: switch back: %w", ns, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// Dialer returns a dial function whose connections originate inside ns, for
// HTTP or gRPC clients in the test process that must reach lab addresses.
func (l *Lab) Dialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := RunInNS(ns, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// AddMacvlan gives every node a link name on its eth0 (a bridge-mode macvlan with
// MAC mac(i)), up, standing in for a VLAN or a second NIC. arp_ignore=1 keeps
// eth0 from answering ARP for the link's addresses, and the link for eth0's, as
// on a host whose links each carry their own addresses. When addr is not nil,
// node i's link also gets addr(i) (ADDRESS/PREFIX), for a VIP whose subnet must
// be configured on its link.
func (l *Lab) AddMacvlan(name string, mac func(i int) net.HardwareAddr, addr func(i int) string) {
	l.t.Helper()
	for i := range l.Nodes() {
		cmds := [][]string{
			{"sysctl", "-q", "-w", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf." + Iface + ".arp_ignore=1"},
			{"ip", "link", "add", name, "link", Iface, "address", mac(i).String(), "type", "macvlan", "mode", "bridge"},
		}
		if addr != nil {
			cmds = append(cmds, []string{"ip", "addr", "add", addr(i), "dev", name})
		}
		cmds = append(cmds, []string{"ip", "link", "set", name, "up"})
		for _, c := range cmds {
			if _, err := l.Exec(l.Node(i), c...); err != nil {
				l.t.Fatalf("lab: macvlan %s on node %d: %v", name, i, err)
			}
		}
	}
}
