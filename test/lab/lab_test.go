package lab

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// eventually polls cond until it holds or the (generous) deadline passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ping(l *Lab, ns string, ip netip.Addr) error {
	_, err := l.Exec(ns, "ping", "-c", "1", "-W", "1", "-q", ip.String())
	return err
}

func TestCleanupRemovesEverything(t *testing.T) {
	var (
		prefix string
		pid    int
	)
	t.Run("lab", func(t *testing.T) {
		l := New(t, 2)
		prefix = l.Prefix()
		if got := listNamespaces(prefix + "-"); len(got) != 4 {
			t.Fatalf("namespaces while running = %v, want hub, client and 2 nodes", got)
		}
		if _, ok := ownerAlive(prefix); !ok {
			t.Fatalf("no owner marker for %s", prefix)
		}
		p := l.Start(l.Node(0), "sleeper", "sleep", "600")
		pid = p.Pid()
		// Processes the lab did not start itself must go too.
		if err := exec.Command("ip", "netns", "exec", l.Node(1), "sh", "-c", "sleep 600 >/dev/null 2>&1 &").Run(); err != nil {
			t.Fatal(err)
		}
	})
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	if strings.Contains(string(out), prefix) {
		t.Errorf("ip netns list still shows %s:\n%s", prefix, out)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process %d started in the lab still exists after cleanup (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(filepath.Join(markerDir, prefix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("marker for %s left behind: %v", prefix, err)
	}
}

func TestTopology(t *testing.T) {
	t.Parallel()
	l := New(t, 3)
	for i := range l.Nodes() {
		for _, ip := range []netip.Addr{l.NodeIP(i), l.NodeIP6(i)} {
			if err := ping(l, l.Client(), ip); err != nil {
				t.Errorf("client -> node %d %s: %v", i, ip, err)
			}
		}
		out, err := l.Exec(l.Node(i), "ip", "-br", "link", "show", "dev", Iface)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, l.NodeMAC(i).String()) || !strings.Contains(out, "UP") {
			t.Errorf("node %d eth0 = %q, want UP with MAC %s", i, out, l.NodeMAC(i))
		}
		lo, err := l.Exec(l.Node(i), "ip", "-br", "link", "show", "dev", "lo")
		if err != nil || !strings.Contains(lo, "UNKNOWN") {
			t.Errorf("node %d lo = %q (%v), want up", i, lo, err)
		}
	}
	if err := ping(l, l.Node(0), l.NodeIP(2)); err != nil {
		t.Errorf("node 0 -> node 2: %v", err)
	}
	if got, want := l.NodeIP(1), netip.MustParseAddr("198.51.100.12"); got != want {
		t.Errorf("NodeIP(1) = %s, want %s", got, want)
	}
	if got, want := l.NodeIP6(1), netip.MustParseAddr("2001:db8:100::12"); got != want {
		t.Errorf("NodeIP6(1) = %s, want %s", got, want)
	}
	if l.NodeIndex(l.Node(2)) != 2 || l.NodeIndex(l.Client()) != -1 {
		t.Errorf("NodeIndex does not invert Node")
	}
	for _, ns := range []string{l.Node(0), l.Client()} {
		out, err := l.Exec(ns, "sysctl", "-n", "net.ipv6.conf."+Iface+".accept_dad")
		if err != nil || strings.TrimSpace(out) != "0" {
			t.Errorf("%s accept_dad = %q (%v), want 0", ns, out, err)
		}
	}
}

func TestWithoutIPv6(t *testing.T) {
	t.Parallel()
	l := New(t, 1, WithoutIPv6())
	out, err := l.Exec(l.Node(0), "ip", "-6", "addr", "show", "dev", Iface)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "" {
		t.Errorf("IPv4-only lab node has IPv6 addresses:\n%s", out)
	}
	if err := ping(l, l.Client(), l.NodeIP(0)); err != nil {
		t.Errorf("client -> node 0: %v", err)
	}
}

func TestCutLink(t *testing.T) {
	t.Parallel()
	l := New(t, 2)
	l.CutLink(0)
	if err := ping(l, l.Client(), l.NodeIP(0)); err == nil {
		t.Errorf("client still reaches node 0 after CutLink")
	}
	if err := ping(l, l.Client(), l.NodeIP(1)); err != nil {
		t.Errorf("client -> node 1 with node 0 cut: %v", err)
	}
	l.RestoreLink(0)
	eventually(t, "client -> node 0 after RestoreLink", func() error { return ping(l, l.Client(), l.NodeIP(0)) })
}

// reachMatrix pings every (from namespace, to address) pair concurrently
// and reports which answered.
func reachMatrix(l *Lab, pairs [][2]string) map[[2]string]bool {
	var mu sync.Mutex
	var wg sync.WaitGroup
	got := map[[2]string]bool{}
	for _, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.Exec(p[0], "ping", "-c", "1", "-W", "0.5", "-q", p[1])
			mu.Lock()
			got[p] = err == nil
			mu.Unlock()
		}()
	}
	wg.Wait()
	return got
}

func TestPartition(t *testing.T) {
	t.Parallel()
	l := New(t, 3)
	vip := "198.51.100.100"
	if _, err := l.Exec(l.Node(1), "ip", "addr", "add", vip+"/32", "dev", Iface); err != nil {
		t.Fatal(err)
	}
	// A process on node 0 connecting to node 1 must time out, not fail fast.
	l.Partition(0, 1)
	want := map[[2]string]bool{}
	for _, c := range []struct {
		from, to int
		reach    bool
	}{
		{0, 1, false}, {1, 0, false}, {0, 2, true}, {2, 0, true}, {1, 2, true},
	} {
		want[[2]string{l.Node(c.from), l.NodeIP(c.to).String()}] = c.reach
		want[[2]string{l.Node(c.from), l.NodeIP6(c.to).String()}] = c.reach
	}
	want[[2]string{l.Node(0), vip}] = false
	want[[2]string{l.Node(2), vip}] = true
	want[[2]string{l.Client(), vip}] = true
	for i := range 2 {
		want[[2]string{l.Client(), l.NodeIP(i).String()}] = true
		want[[2]string{l.Node(i), l.ClientIP6().String()}] = true
	}
	var pairs [][2]string
	for p := range want {
		pairs = append(pairs, p)
	}
	got := reachMatrix(l, pairs)
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s -> %s: reachable %v, want %v", p[0], p[1], got[p], w)
		}
	}
	var conn net.Conn
	err := l.RunInNS(l.Node(0), func() error {
		d := net.Dialer{Timeout: 300 * time.Millisecond}
		var err error
		conn, err = d.Dial("tcp", net.JoinHostPort(l.NodeIP(1).String(), "7950"))
		return err
	})
	if conn != nil {
		conn.Close()
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Errorf("dial across the partition = %v, want a timeout (silent drop)", err)
	}

	l.Heal()
	got = reachMatrix(l, [][2]string{
		{l.Node(0), l.NodeIP(1).String()}, {l.Node(0), l.NodeIP6(1).String()}, {l.Node(1), l.NodeIP(0).String()},
	})
	for p, ok := range got {
		if !ok {
			t.Errorf("%s -> %s blocked after Heal", p[0], p[1])
		}
	}

	l.Partition(2)
	l.Partition(2) // idempotent
	got = reachMatrix(l, [][2]string{
		{l.Node(2), l.NodeIP(0).String()}, {l.Node(2), l.NodeIP(1).String()}, {l.Node(1), l.NodeIP6(2).String()},
		{l.Client(), l.NodeIP(2).String()},
	})
	for p, ok := range got {
		if wantOK := p[0] == l.Client(); ok != wantOK {
			t.Errorf("after Partition(2): %s -> %s reachable %v, want %v", p[0], p[1], ok, wantOK)
		}
	}
	l.Heal()
	if err := ping(l, l.Node(2), l.NodeIP(0)); err != nil {
		t.Errorf("node 2 -> node 0 after Heal: %v", err)
	}
}

func TestNeigh(t *testing.T) {
	t.Parallel()
	l := New(t, 2)
	if err := ping(l, l.Client(), l.NodeIP(1)); err != nil {
		t.Fatal(err)
	}
	mac, state, err := l.Neigh(l.Client(), l.NodeIP(1))
	if err != nil {
		t.Fatal(err)
	}
	if mac.String() != l.NodeMAC(1).String() {
		t.Errorf("client neighbour for node 1 = %s (%s), want %s", mac, state, l.NodeMAC(1))
	}
	if state == "" {
		t.Errorf("neighbour state empty")
	}
	if _, _, err := l.Neigh(l.Client(), netip.MustParseAddr("198.51.100.200")); err == nil {
		t.Errorf("Neigh for an address never contacted returned no error")
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	l := New(t, 1)
	p := l.Start(l.Node(0), "show", "sh", "-c", "ip -br addr show dev eth0; echo ready; exec sleep 600")
	eventually(t, "process output", func() error {
		if !strings.Contains(p.Log(), "ready") {
			return errors.New("no ready line yet")
		}
		return nil
	})
	if !strings.Contains(p.Log(), l.NodeIP(0).String()) {
		t.Errorf("process did not run in node 0's namespace, output:\n%s", p.Log())
	}
	if p.Exited() {
		t.Fatalf("process exited early")
	}
	if err := p.Stop(); err == nil {
		t.Errorf("sleep stopped by SIGTERM reported a clean exit")
	}
	if !p.Exited() {
		t.Errorf("Exited false after Stop")
	}

	graceful := l.Start(l.Node(0), "graceful", "sh", "-c", "trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.05; done")
	eventually(t, "graceful process up", func() error {
		if !strings.Contains(graceful.Log(), "up") {
			return errors.New("not up yet")
		}
		return nil
	})
	if err := graceful.Stop(); err != nil {
		t.Errorf("graceful Stop: %v\n%s", err, graceful.Log())
	}
	if !strings.Contains(graceful.Log(), "bye") {
		t.Errorf("SIGTERM handler did not run:\n%s", graceful.Log())
	}

	k := l.Start(l.Node(0), "graceful", "sleep", "600")
	if k.Name != "graceful-2" {
		t.Errorf("second process named %q, want graceful-2", k.Name)
	}
	k.Kill()
	var exitErr *exec.ExitError
	if err := k.Wait(); !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("Wait after Kill = %v, want killed by SIGKILL", err)
	}
}

func TestCapture(t *testing.T) {
	t.Parallel()
	l := New(t, 1)
	c := l.Capture(l.Client(), Iface, "icmp")
	if err := ping(l, l.Client(), l.NodeIP(0)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	line, ok := c.WaitFor(ctx, func(s string) bool { return strings.Contains(s, "echo reply") })
	if !ok {
		t.Fatalf("no echo reply captured; lines: %q", c.Lines())
	}
	if !strings.Contains(line, l.NodeMAC(0).String()) {
		t.Errorf("captured line lacks the sender MAC (-e): %q", line)
	}
	lines := c.Stop()
	found := false
	for _, s := range lines {
		if strings.Contains(s, "echo request") && strings.Contains(s, l.ClientMAC().String()) {
			found = true
		}
	}
	if !found {
		t.Errorf("echo request not in captured lines %q", lines)
	}
}

func TestRunInNS(t *testing.T) {
	t.Parallel()
	l := New(t, 2)
	before, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	err = l.RunInNS(l.Node(1), func() error {
		want, err := netns.GetFromName(l.Node(1))
		if err != nil {
			return err
		}
		defer want.Close()
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		if !cur.Equal(want) {
			return errors.New("fn does not run in the node's namespace")
		}
		ifi, err := net.InterfaceByName(Iface)
		if err != nil {
			return err
		}
		if ifi.HardwareAddr.String() != l.NodeMAC(1).String() {
			return errors.New("eth0 in node 1 has MAC " + ifi.HardwareAddr.String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sentinel := errors.New("from fn")
	if err := l.RunInNS(l.Node(0), func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("RunInNS error = %v, want fn's error", err)
	}
	if err := l.RunInNS(l.Prefix()+"-missing", func() error { return nil }); err == nil {
		t.Errorf("RunInNS in a missing namespace succeeded")
	}
}

func TestDialer(t *testing.T) {
	t.Parallel()
	l := New(t, 1)
	var ln net.Listener
	if err := l.RunInNS(l.Node(0), func() error {
		var err error
		ln, err = net.Listen("tcp", l.NodeIP(0).String()+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			_, _ = c.Write([]byte("hi"))
			_ = c.Close()
		}
	}()
	c, err := l.Dialer(l.Client())(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != l.ClientIP().String() {
		t.Errorf("dialled from %s, want the client address %s", got, l.ClientIP())
	}
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil || string(buf) != "hi" {
		t.Errorf("read %q, %v", buf, err)
	}
}

func TestSweepStale(t *testing.T) {
	dead := newPrefix()
	alive := newPrefix()
	young := newPrefix()
	for _, p := range []string{dead, alive, young} {
		if _, err := run("ip", "netns", "add", p+"-hub"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = deleteNamespace(p + "-hub")
			_ = removeMarker(p)
		})
	}
	if err := os.MkdirAll(markerDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// PIDs never exceed 2^22, so this owner is certainly dead.
	if err := os.WriteFile(filepath.Join(markerDir, dead), []byte("999999999"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeMarker(alive); err != nil {
		t.Fatal(err)
	}
	orphan := newPrefix() // a dead run that died before creating namespaces
	if err := os.WriteFile(filepath.Join(markerDir, orphan), []byte("999999999"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = removeMarker(orphan) })
	if err := sweepStale(staleAge); err != nil {
		t.Fatal(err)
	}
	if got := listNamespaces(dead + "-"); len(got) != 0 {
		t.Errorf("namespace of a dead owner survived the sweep: %v", got)
	}
	if _, err := os.Stat(filepath.Join(markerDir, dead)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("marker of a dead owner survived the sweep")
	}
	if _, err := os.Stat(filepath.Join(markerDir, orphan)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("orphan marker of a dead owner survived the sweep")
	}
	if _, ok := ownerAlive(alive); !ok {
		t.Errorf("marker of a live owner was swept")
	}
	if got := listNamespaces(alive + "-"); len(got) != 1 {
		t.Errorf("namespace of a live owner was swept")
	}
	if got := listNamespaces(young + "-"); len(got) != 1 {
		t.Errorf("young namespace without a marker was swept")
	}
}

func TestEchoProbe(t *testing.T) {
	t.Parallel()
	l := New(t, 2)
	const port = 7777
	l.StartEcho(port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	p6 := l.Probe(ctx, l.Client(), netip.AddrPortFrom(l.NodeIP6(1), port), 5*time.Millisecond)
	r, err := p6.WaitReply(ctx, l.Node(1), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if r.From != l.NodeIP6(1) {
		t.Errorf("IPv6 reply from %s, want %s", r.From, l.NodeIP6(1))
	}
	p6.Stop()

	vip := netip.MustParseAddr("198.51.100.100")
	if _, err := l.Exec(l.Node(0), "ip", "addr", "add", vip.String()+"/32", "dev", Iface); err != nil {
		t.Fatal(err)
	}
	p := l.Probe(ctx, l.Client(), netip.AddrPortFrom(vip, port), 5*time.Millisecond)
	r, err = p.WaitReply(ctx, l.Node(0), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if r.From != vip {
		t.Errorf("reply to the VIP came from %s, want the VIP", r.From)
	}
	if _, err := l.Exec(l.Node(0), "ip", "addr", "del", vip.String()+"/32", "dev", Iface); err != nil {
		t.Fatal(err)
	}
	moved := time.Now()
	if _, err := l.Exec(l.Node(1), "ip", "addr", "add", vip.String()+"/32", "dev", Iface); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exec(l.Node(1), "arping", "-q", "-c", "2", "-U", "-i", Iface, "-S", vip.String(), vip.String()); err != nil {
		t.Logf("arping: %v", err)
	}
	if _, err := p.WaitReply(ctx, l.Node(1), moved); err != nil {
		t.Fatal(err)
	}
	res := p.Stop()
	sw := res.Switches()
	if len(sw) != 1 || sw[0].From != l.Node(0) || sw[0].To != l.Node(1) {
		t.Fatalf("switches = %+v, want one from node 0 to node 1", sw)
	}
	if res.Sent == 0 || len(res.Replies) == 0 || res.MaxGap() < sw[0].Gap {
		t.Errorf("inconsistent result: sent %d, replies %d, max gap %v < switch gap %v",
			res.Sent, len(res.Replies), res.MaxGap(), sw[0].Gap)
	}
	t.Logf("VIP move by hand + arping: gap %v, lost %d of %d", sw[0].Gap, res.Lost(), res.Sent)
}

func TestProbeResult(t *testing.T) {
	base := time.Unix(1000, 0)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	r := ProbeResult{
		Sent: 8,
		Replies: []ProbeReply{
			{Seq: 0, Received: at(0), Node: "a"},
			{Seq: 1, Received: at(5), Node: "a"},
			{Seq: 4, Received: at(40), Node: "b"},
			{Seq: 5, Received: at(45), Node: "b"},
			{Seq: 5, Received: at(46), Node: "b"},
			{Seq: 7, Received: at(100), Node: "a"},
		},
	}
	sw := r.Switches()
	want := []Switch{
		{From: "a", To: "b", LastFrom: at(5), FirstTo: at(40), Gap: 35 * time.Millisecond},
		{From: "b", To: "a", LastFrom: at(46), FirstTo: at(100), Gap: 54 * time.Millisecond},
	}
	if len(sw) != len(want) {
		t.Fatalf("switches = %+v, want %+v", sw, want)
	}
	for i := range want {
		if sw[i] != want[i] {
			t.Errorf("switch %d = %+v, want %+v", i, sw[i], want[i])
		}
	}
	if got := r.MaxGap(); got != 54*time.Millisecond {
		t.Errorf("MaxGap = %v, want 54ms", got)
	}
	if got := r.Lost(); got != 3 {
		t.Errorf("Lost = %d, want 3 (seq 2, 3, 6)", got)
	}
	if got := (ProbeResult{}).MaxGap(); got != 0 {
		t.Errorf("MaxGap of nothing = %v", got)
	}
}

func TestHostAddressing(t *testing.T) {
	if got := hostMAC(11).String(); got != "02:72:76:00:00:11" {
		t.Errorf("hostMAC(11) = %s", got)
	}
	if got := hostMAC(50).String(); got != "02:72:76:00:00:50" {
		t.Errorf("hostMAC(50) = %s", got)
	}
	if p := newPrefix(); !labNS.MatchString(p+"-n12") || !labNS.MatchString(p+"-hub") || labNS.MatchString(p+"-x") {
		t.Errorf("prefix %s does not fit the sweep pattern", p)
	}
}
