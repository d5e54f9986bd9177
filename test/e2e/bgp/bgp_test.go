package bgp

import (
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/cluster"
)

// TestBGPMode runs three agents in bgp mode against the router through the life
// of the control-plane VIPs (IPv4 and IPv6): advertised by every voter with its
// own next hop and held on lo only; withdrawn at once on a graceful stop; dropped
// when a node is cut off from Raft although its session stays up (fence timeout);
// dropped within the hold time when a node's link is cut; back each time the node
// returns.
func TestBGPMode(t *testing.T) {
	c := newBGPCluster(t)
	c.startAgents(t, []netip.Addr{cp4, cp6}, nil)
	c.await(t, c.everyVIP(all()), time.Time{})

	// One path per node, each with the node's own next hop of the VIP's family
	// (IPv6 over the IPv4 session, through MP-BGP).
	for _, v := range c.vips {
		paths := c.paths(t, v)
		for i := range nodes {
			want := c.l.NodeIP(i)
			if v.Is6() {
				want = c.l.NodeIP6(i)
			}
			if p, ok := paths[i]; !ok || p.NextHop != want {
				t.Errorf("%s from node %d: path %+v (present %v), want next hop %s", v, i, p, ok, want)
			}
		}
	}
	for i := range nodes {
		c.checkHeld(t, i, c.vips)
		st := c.status(t, i)
		if len(st.BGPSessions) != 1 {
			t.Fatalf("node %d: bgp_sessions %+v, want one", i, st.BGPSessions)
		}
		s := st.BGPSessions[0]
		if s.Peer != c.l.ClientIP().String() || s.State != "established" || s.PrefixesSent != 2 {
			t.Errorf("node %d: session %+v, want established with %s, 2 prefixes sent", i, s, c.l.ClientIP())
		}
		if !slices.Contains(st.HeldVIPs, cp4.String()) || !slices.Contains(st.HeldVIPs, cp6.String()) {
			t.Errorf("node %d: held_vips %v, want both control-plane VIPs", i, st.HeldVIPs)
		}
	}
	leader := c.leaderIndex(t)
	follower := (leader + 1) % nodes

	t.Run("graceful stop withdraws at once", func(t *testing.T) {
		// The leader: it withdraws before it hands leadership over.
		a := c.agents[leader]
		stop := time.Now()
		if err := a.Proc.Stop(); err != nil {
			t.Fatalf("stop %s: %v", a.Name, err)
		}
		gone := c.await(t, c.everyVIP(others(leader)), stop)
		t.Logf("%s stopped: router dropped its paths %v after SIGTERM (hold time %v)", a.Name, gone.Sub(stop), holdTime)
		c.checkHeld(t, leader, nil)
		c.awaitAdvertisers(t, follower, cp4, others(leader))
		a.Start(agents.Binary(t))
		c.await(t, c.everyVIP(all()), time.Time{})
		c.checkHeld(t, leader, c.vips)
	})

	t.Run("crash drops the session, restart clears lo first", func(t *testing.T) {
		a := c.agents[follower]
		start := time.Now()
		a.Proc.Kill()
		gone := c.await(t, c.everyVIP(others(follower)), start)
		t.Logf("%s killed: router dropped its paths %v later (the kernel closed the session)", a.Name, gone.Sub(start))
		c.checkHeld(t, follower, c.vips) // a crash leaves the addresses behind
		a.Start(agents.Binary(t))
		c.await(t, c.everyVIP(all()), time.Time{})
		if !strings.Contains(a.Proc.Log(), "removed VIPs left by an earlier run") {
			t.Errorf("%s did not clear the VIPs its crashed run left on lo", a.Name)
		}
		c.checkHeld(t, follower, c.vips)
	})

	t.Run("fenced node withdraws while its session stays up", func(t *testing.T) {
		leader := c.leaderIndex(t)
		cut := (leader + 2) % nodes
		start := time.Now()
		c.l.Partition(cut)
		gone := c.await(t, c.everyVIP(others(cut)), start)
		t.Logf("node %d cut off from Raft: router dropped its paths %v later", cut, gone.Sub(start))
		if st := c.status(t, cut); len(st.BGPSessions) != 1 || st.BGPSessions[0].State != "established" || st.BGPSessions[0].PrefixesSent != 0 {
			t.Errorf("fenced node %d: sessions %+v, want one established with nothing sent", cut, st.BGPSessions)
		}
		c.checkHeld(t, cut, nil)
		c.l.Heal()
		c.await(t, c.everyVIP(all()), time.Time{})
		c.checkHeld(t, cut, c.vips)
	})

	t.Run("cut link drops the paths within the hold time", func(t *testing.T) {
		leader := c.leaderIndex(t)
		cut := (leader + 1) % nodes
		start := time.Now()
		c.l.CutLink(cut)
		gone := c.await(t, c.everyVIP(others(cut)), start)
		t.Logf("node %d link cut: router dropped its paths %v later (hold time %v)", cut, gone.Sub(start), holdTime)
		c.awaitAdvertisers(t, leader, cp4, others(cut))
		c.l.RestoreLink(cut)
		c.await(t, c.everyVIP(all()), time.Time{})
	})
}

// TestBGPModeAPIServerHealth gives every node a real kube-apiserver in its
// namespace, checked by its agent: a voter whose API server dies withdraws the
// control-plane VIP (and takes it off lo) although its agent keeps running, and
// advertises it again once the API server is back.
func TestBGPModeAPIServerHealth(t *testing.T) {
	c := newBGPCluster(t)
	cps := startControlPlanes(t, c)
	c.startAgents(t, []netip.Addr{cp4}, func(i int) []string {
		return []string{"--apiserver-health-url=" + cps[i].APIServerURL + "/livez"}
	})
	c.await(t, c.everyVIP(all()), time.Time{})
	for i := range nodes {
		if h := c.status(t, i).APIServerHealthy; h == nil || !*h {
			t.Fatalf("node %d: apiserver_healthy %v, want true", i, h)
		}
	}
	const victim = 1
	stop := time.Now()
	cps[victim].StopAPIServer(t)
	gone := c.await(t, c.everyVIP(others(victim)), stop)
	t.Logf("node %d API server killed: router dropped its path %v later", victim, gone.Sub(stop))
	if h := c.status(t, victim).APIServerHealthy; h == nil || *h {
		t.Errorf("node %d: apiserver_healthy %v, want false", victim, h)
	}
	c.checkHeld(t, victim, nil)
	c.checkHeld(t, (victim+1)%nodes, c.vips)

	start := time.Now()
	cps[victim].StartAPIServer(t)
	back := c.await(t, c.everyVIP(all()), start)
	if commit, ok := c.commitTime(t, cp4, c.agents[victim].Name, start); ok {
		t.Logf("node %d API server back: leader committed %v after the restart began, router had the path %v after the commit",
			victim, commit.Sub(start), back.Sub(commit))
	} else {
		t.Errorf("no leader log line committing node %d back as an advertiser of %s", victim, cp4)
	}
	c.checkHeld(t, victim, c.vips)
}

// startControlPlanes starts a kube-apiserver (with its etcd) inside each node's
// namespace, listening on the node's address.
func startControlPlanes(t testing.TB, c *bgpCluster) []*cluster.ControlPlane {
	t.Helper()
	var cps []*cluster.ControlPlane
	for i := range nodes {
		cps = append(cps, cluster.Start(t, cluster.Options{NetNS: c.l.Node(i), BindAddress: c.l.NodeIP(i).String(), NoControllerManager: true}))
	}
	return cps
}

// sigterm sends SIGTERM to node i's agent without waiting for it to exit.
func (c *bgpCluster) sigterm(t testing.TB, i int) {
	t.Helper()
	if err := c.agents[i].Proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM node %d: %v", i, err)
	}
}
