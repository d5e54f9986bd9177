package vip_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/cluster"
	"github.com/raftvip/raftvip/test/lab"
)

// TestLeaderWithDeadAPIServerHandsOver runs a real kube-apiserver next to each agent.
// When the leader's own API server dies while the others are healthy, the leader
// hands leadership (and the control-plane VIP) to a voter whose API server answers.
func TestLeaderWithDeadAPIServerHandsOver(t *testing.T) {
	l := lab.New(t, 3, lab.WithoutIPv6())
	var cps []*cluster.ControlPlane
	for i := range 3 {
		cps = append(cps, cluster.Start(t, cluster.Options{NetNS: l.Node(i), BindAddress: l.NodeIP(i).String(), NoControllerManager: true}))
	}
	all := agents.StartLab(t, l, agents.LabOptions{VIPs: []string{vip4}, PerNode: func(i int) []string {
		// Each agent watches its own API server.
		return []string{"--apiserver-health-url=" + cps[i].APIServerURL + "/livez"}
	}})
	leader := agents.Leader(t, all, 20*time.Second)
	ctx := context.Background()
	lab.Eventually(t, 20*time.Second, "every voter reports a healthy API server to the leader", func() error {
		st, err := leader.State(ctx)
		if err != nil {
			return err
		}
		if !st.APIServerEverHealthy {
			return errorf("no API server reported healthy yet")
		}
		for _, a := range all {
			if n, ok := st.Nodes[a.Name]; !ok || !n.APIServerHealthy {
				return errorf("%s not reported healthy: %+v", a.Name, n)
			}
		}
		return nil
	})
	v4 := netip.MustParseAddr(vip4)
	lab.Eventually(t, 10*time.Second, "ping VIP", func() error { return ping(l, v4) })

	cps[leader.Index].StopAPIServer(t)
	lab.Eventually(t, 20*time.Second, "the old leader notices its API server is down", func() error {
		st, err := leader.Status(ctx)
		if err != nil {
			return err
		}
		if st.APIServerHealthy == nil || *st.APIServerHealthy {
			return errorf("old leader still reports its API server healthy")
		}
		return nil
	})
	// The others agree on a leader that is not the old one (Leader waits while they
	// still follow it).
	next := agents.Leader(t, all, 20*time.Second, leader)
	lab.Eventually(t, 10*time.Second, "the client follows the VIP to the new leader", func() error {
		return l.NeighIs(v4, l.NodeMAC(next.Index))
	})
	lab.Eventually(t, 5*time.Second, "old leader released the VIP and follows the new one", func() error {
		if h := leader.Held(t); len(h) != 0 {
			return errorf("old leader holds %v", h)
		}
		st, err := leader.Status(ctx)
		if err != nil {
			return err
		}
		if st.State != "Follower" || st.Leader.ID != next.Name {
			return errorf("old leader: state %s, leader %q; want follower of %s", st.State, st.Leader.ID, next.Name)
		}
		return nil
	})
}
