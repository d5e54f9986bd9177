package bgp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftvip/raftvip/daemon"
	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/bgprouter"
	"github.com/raftvip/raftvip/test/lab"
)

const (
	routerAS = 64500
	nodeAS   = 64512
	// holdTime is the hold time both sides of every session propose.
	holdTime = 3 * time.Second
	// waitLong bounds every wait: a failure deadline, never a measured budget.
	waitLong = 2 * time.Minute
	nodes    = 3
)

var (
	cp4 = netip.MustParseAddr("198.51.100.100")
	cp6 = netip.MustParseAddr("2001:db8:100::100")
)

// bgpCluster is a lab whose client namespace runs the router, and (once
// startAgents ran) three raftvip voters in bgp mode peering with it.
type bgpCluster struct {
	l      *lab.Lab
	router *bgprouter.Remote
	agents []*agents.Agent
	vips   []netip.Addr
}

// newBGPCluster builds the lab and starts the router, which accepts every node
// (over IPv4, eBGP, hold time holdTime) as its neighbor of the same index.
func newBGPCluster(t testing.TB) *bgpCluster {
	t.Helper()
	l := lab.New(t, nodes)
	rc := bgprouter.Config{AS: routerAS, RouterID: l.ClientIP(), ListenPort: 179, ListenAddrs: []string{"0.0.0.0", "::"}}
	for i := range nodes {
		rc.Neighbors = append(rc.Neighbors, bgprouter.Neighbor{Address: l.NodeIP(i), AS: nodeAS, HoldTime: holdTime})
	}
	return &bgpCluster{l: l, router: bgprouter.StartRemote(t, l, l.Client(), bgprouter.SocketDir(t), rc)}
}

// startAgents starts one agent per node with the control-plane VIPs vips, in bgp
// mode (with its IPv6 address as IPv6 next hop), plus extra(i) flags for node i.
func (c *bgpCluster) startAgents(t testing.TB, vips []netip.Addr, extra func(i int) []string) {
	t.Helper()
	c.vips = vips
	var vipFlags []string
	for _, v := range vips {
		vipFlags = append(vipFlags, v.String())
	}
	for i := range nodes {
		flags := []string{"--mode=bgp", fmt.Sprintf("--bgp-as=%d", nodeAS),
			fmt.Sprintf("--bgp-peer=%s,%d,hold=%s", c.l.ClientIP(), routerAS, holdTime),
			"--bgp-next-hop-ipv6=" + c.l.NodeIP6(i).String(), "--log-format=json"}
		if extra != nil {
			flags = append(flags, extra(i)...)
		}
		c.agents = append(c.agents, agents.StartLab(t, c.l, agents.LabOptions{VIPs: vipFlags, Extra: flags, Only: []int{i}})...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, a := range c.agents {
				t.Logf("---- %s log tail ----\n%s", a.Name, tail(a.Proc.Log(), 40))
			}
		}
	})
}

// all is every node index.
func all() []int { return []int{0, 1, 2} }

// others is every node index but i.
func others(i int) []int {
	return slices.DeleteFunc(all(), func(j int) bool { return j == i })
}

// everyVIP maps each of the cluster's control-plane VIPs to the same nodes.
func (c *bgpCluster) everyVIP(nodes []int) map[netip.Addr][]int {
	out := map[netip.Addr][]int{}
	for _, v := range c.vips {
		out[v] = nodes
	}
	return out
}

// await waits until the router's RIB holds exactly the given nodes' paths for each
// VIP and returns the arrival time of what made it match (after since; zero since:
// when the match was seen).
func (c *bgpCluster) await(t testing.TB, want map[netip.Addr][]int, since time.Time) time.Time {
	t.Helper()
	return c.router.AwaitHosts(t, want, since, waitLong)
}

// paths returns the router's paths for vip, keyed by node index.
func (c *bgpCluster) paths(t testing.TB, vip netip.Addr) map[int]bgprouter.Path {
	t.Helper()
	return c.router.HostPaths(t, vip)
}

// addrsOn lists the addresses on dev inside node i's namespace.
func (c *bgpCluster) addrsOn(t testing.TB, i int, dev string) []netip.Addr {
	t.Helper()
	out, err := c.l.Exec(c.l.Node(i), "ip", "-o", "addr", "show", "dev", dev)
	if err != nil {
		t.Fatalf("node %d: list addresses of %s: %v", i, dev, err)
	}
	var addrs []netip.Addr
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for j := 0; j+1 < len(f); j++ {
			if f[j] != "inet" && f[j] != "inet6" {
				continue
			}
			if p, err := netip.ParsePrefix(f[j+1]); err == nil {
				addrs = append(addrs, p.Addr())
			}
		}
	}
	return addrs
}

// checkHeld fails unless node i holds exactly want of the cluster's VIPs on lo,
// and none of them on the segment interface.
func (c *bgpCluster) checkHeld(t testing.TB, i int, want []netip.Addr) {
	t.Helper()
	lo := c.addrsOn(t, i, "lo")
	eth := c.addrsOn(t, i, lab.Iface)
	for _, v := range c.vips {
		if got, exp := slices.Contains(lo, v), slices.Contains(want, v); got != exp {
			t.Errorf("node %d: VIP %s on lo = %v, want %v (lo has %v)", i, v, got, exp, lo)
		}
		if slices.Contains(eth, v) {
			t.Errorf("node %d: VIP %s is on the segment interface %s (%v)", i, v, lab.Iface, eth)
		}
	}
}

// status reads node i's /raft/status.
func (c *bgpCluster) status(t testing.TB, i int) daemon.RaftStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.agents[i].Status(ctx)
	if err != nil {
		t.Fatalf("node %d status: %v", i, err)
	}
	return st
}

// awaitAdvertisers waits until node i's replicated state names exactly nodes as
// the advertisers of vip.
func (c *bgpCluster) awaitAdvertisers(t testing.TB, i int, vip netip.Addr, idx []int) {
	t.Helper()
	var want []string
	for _, j := range idx {
		want = append(want, c.agents[j].Name)
	}
	deadline := time.Now().Add(waitLong)
	var st raftstore.State
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var err error
		st, err = c.agents[i].State(ctx)
		cancel()
		if err == nil && slices.Equal(st.Advertisers[vip.String()], want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d: advertisers of %s = %v (err %v), want %v", i, vip, st.Advertisers[vip.String()], err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leaderIndex waits for the agents (but skip) to agree on a leader and returns its index.
func (c *bgpCluster) leaderIndex(t testing.TB, skip ...int) int {
	t.Helper()
	var sk []*agents.Agent
	for _, i := range skip {
		sk = append(sk, c.agents[i])
	}
	return agents.Leader(t, c.agents, waitLong, sk...).Index
}

// logLine is one JSON log line of an agent, the fields the tests read.
type logLine struct {
	Time time.Time `json:"time"`
	Msg  string    `json:"msg"`
	VIP  string    `json:"vip"`
	To   []string  `json:"to"`
}

// commitTime finds, in every agent's log, the leader's commit of vip's advertiser
// set that names node after since.
func (c *bgpCluster) commitTime(t testing.TB, vip netip.Addr, node string, since time.Time) (time.Time, bool) {
	t.Helper()
	for _, a := range c.agents {
		sc := bufio.NewScanner(strings.NewReader(a.Proc.Log()))
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			var l logLine
			if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "BGP advertisers changed" || l.VIP != vip.String() {
				continue
			}
			if l.Time.After(since) && slices.Contains(l.To, node) {
				return l.Time, true
			}
		}
	}
	return time.Time{}, false
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
