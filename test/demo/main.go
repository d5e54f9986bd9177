// Command demo is `make demo`: three raftvip agents in a network-namespace lab hold a
// control-plane VIP; the leader's cable is pulled and the VIP moves, measured from a
// client probing every 5 ms. Everything it creates lives in lab namespaces and is
// removed on exit, even on failure or Ctrl-C.
package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/lab"
)

const (
	vip4     = "198.51.100.100"
	echoPort = 9000
)

// demoT gives the lab and agent helpers what they need outside `go test`:
// failures end the demo, cleanups run in reverse order on the way out.
type demoT struct {
	cleanups []func()
	dir      string
}

type fatal struct{ msg string }

func (d *demoT) Helper()                         {}
func (d *demoT) Logf(format string, args ...any) {}
func (d *demoT) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "   warning: "+format+"\n", args...)
}
func (d *demoT) Fatalf(format string, args ...any) { panic(fatal{fmt.Sprintf(format, args...)}) }
func (d *demoT) Cleanup(f func())                  { d.cleanups = append(d.cleanups, f) }
func (d *demoT) TempDir() string {
	if d.dir == "" {
		dir, err := os.MkdirTemp("", "raftvip-demo")
		if err != nil {
			panic(fatal{err.Error()})
		}
		d.dir = dir
		d.Cleanup(func() { os.RemoveAll(dir) })
	}
	return d.dir
}

func (d *demoT) close() {
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
}

func main() {
	t := &demoT{}
	code := 0
	func() {
		defer func() {
			if r := recover(); r != nil {
				f, ok := r.(fatal)
				if !ok {
					panic(r)
				}
				fmt.Fprintln(os.Stderr, "demo failed:", f.msg)
				code = 1
			}
		}()
		run(t)
	}()
	step("cleaning up: stopping agents, deleting the lab namespaces")
	t.close()
	os.Exit(code)
}

func step(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}

func say(format string, args ...any) {
	fmt.Printf("    "+format+"\n", args...)
}

func run(t *demoT) {
	step("building a lab: 3 node namespaces and a client on one bridge (198.51.100.0/24), nothing in the host's namespace")
	l := lab.New(t, 3, lab.WithoutIPv6())
	for i := range 3 {
		say("node%d  %s  %s  mac %s", i, l.Node(i), l.NodeIP(i), l.NodeMAC(i))
	}
	say("client %s  %s", l.Client(), l.ClientIP())
	l.StartEcho(echoPort)

	step("starting 3 raftvip agents (voters), control-plane VIP %s", vip4)
	all := agents.StartLab(t, l, agents.LabOptions{VIPs: []string{vip4}, Extra: []string{"--log-level=info"}})
	say("node0 runs: raftvip %s", strings.Join(all[0].Args, " "))
	start := time.Now()
	leader := agents.Leader(t, all, 20*time.Second)
	say("raft elected %s as leader after %s; it holds the VIP", leader.Name, time.Since(start).Round(time.Millisecond))

	vip := netip.MustParseAddr(vip4)
	step("client: ping %s", vip4)
	var out string
	var err error
	for range 50 {
		if out, err = l.Exec(l.Client(), "ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", vip4); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("ping %s: %v", vip4, err)
	}
	say("%s", lineWith(out, "packets transmitted"))
	mac, state, _ := l.Neigh(l.Client(), vip)
	say("client's neighbour entry: %s is-at %s (%s) = %s", vip4, mac, state, whose(l, mac.String()))

	step("client: UDP probe to %s:%d every 5 ms; the answering node's name comes back in each reply", vip4, echoPort)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	probe := l.Probe(ctx, l.Client(), netip.AddrPortFrom(vip, echoPort), 5*time.Millisecond)
	if _, err := probe.WaitReply(ctx, leader.NS, time.Now()); err != nil {
		t.Fatalf("probe: %v", err)
	}
	time.Sleep(300 * time.Millisecond)

	step("pulling %s's cable (its bridge port goes down; the process keeps running)", leader.Name)
	cut := time.Now()
	l.CutLink(leader.Index)
	next := agents.Leader(t, all, 20*time.Second, leader)
	say("raft elected %s after %s", next.Name, time.Since(cut).Round(time.Millisecond))
	waitCtx, waitCancel := context.WithTimeout(ctx, 10*time.Second)
	if _, err := probe.WaitReply(waitCtx, next.NS, cut); err != nil {
		waitCancel()
		t.Fatalf("probe after failover: %v", err)
	}
	waitCancel()
	time.Sleep(200 * time.Millisecond)
	res := probe.Stop()
	for _, s := range res.Switches() {
		say("answers moved %s -> %s: gap seen by the client %s", s.From, s.To, s.Gap.Round(time.Millisecond))
	}
	say("probes sent %d, lost %d (each 5 ms)", res.Sent, res.Lost())
	mac, state, _ = l.Neigh(l.Client(), vip)
	say("client's neighbour entry now: %s is-at %s (%s) = %s — moved by gratuitous ARP, nothing flushed", vip4, mac, state, whose(l, mac.String()))

	step("plugging %s back in: it rejoins as a follower and stays silent", leader.Name)
	l.RestoreLink(leader.Index)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, err := leader.Status(ctx)
		if err == nil && st.State == "Follower" && st.Leader.ID == next.Name {
			say("%s: state %s, leader %s, term %d, holds %v", leader.Name, st.State, st.Leader.ID, st.Term, st.HeldVIPs)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	step("status of the new leader (raftvip status):")
	out, err = l.Exec(next.NS, agents.Binary(t), "status", "--addr", fmt.Sprintf("http://127.0.0.1:%d", agents.StatusPort))
	if err != nil {
		t.Fatalf("raftvip status: %v", err)
	}
	for _, ln := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		say("%s", ln)
	}
}

// lineWith returns the first line of s containing sub, or all of s.
func lineWith(s, sub string) string {
	for _, ln := range strings.Split(s, "\n") {
		if strings.Contains(ln, sub) {
			return ln
		}
	}
	return strings.TrimSpace(s)
}

func whose(l *lab.Lab, mac string) string {
	for i := range l.Nodes() {
		if l.NodeMAC(i).String() == mac {
			return fmt.Sprintf("node%d", i)
		}
	}
	return "unknown"
}
