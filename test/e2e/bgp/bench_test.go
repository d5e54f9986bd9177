package bgp

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/agents"
)

// trials is how many failures each benchmark iteration measures.
const trials = 10

// ms is a duration in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// report adds the median and the maximum of xs (which it sorts) as name-p50-ms and
// name-max-ms.
func report(b *testing.B, name string, xs []float64) {
	slices.Sort(xs)
	b.ReportMetric(xs[len(xs)/2], name+"-p50-ms")
	b.ReportMetric(xs[len(xs)-1], name+"-max-ms")
}

// BenchmarkBGPWithdrawOnStop measures, over trials graceful stops (SIGTERM to
// each node's agent in turn), the time from the signal to the router dropping
// that node's path for the control-plane VIP. The hold time (3s) bounds what a
// crash would cost; a graceful stop withdraws and sends a Cease first.
func BenchmarkBGPWithdrawOnStop(b *testing.B) {
	c := newBGPCluster(b)
	c.startAgents(b, []netip.Addr{cp4}, nil)
	c.await(b, c.everyVIP(all()), time.Time{})
	var withdraw []float64
	for b.Loop() {
		for n := range trials {
			i := n % nodes
			a := c.agents[i]
			start := time.Now()
			c.sigterm(b, i)
			gone := c.await(b, c.everyVIP(others(i)), start)
			withdraw = append(withdraw, ms(gone.Sub(start)))
			if err := a.Proc.Wait(); err != nil {
				b.Fatalf("%s did not stop cleanly: %v", a.Name, err)
			}
			a.Start(agents.Binary(b))
			c.await(b, c.everyVIP(all()), time.Time{})
		}
	}
	report(b, "sigterm-to-withdrawn", withdraw)
	b.ReportMetric(float64(len(withdraw)), "samples")
}

// BenchmarkBGPAPIServerRecovery gives each node a real kube-apiserver and, over
// trials rounds (each node's in turn), kills one and starts it again. It reports
// the time from the leader committing the recovered voter back into the
// control-plane VIP's advertiser set to the router receiving its path (the
// asked-for number), and for context the time from the kill to the router
// dropping the path (health check debounce + commit + withdrawal) and from the
// restart to the path's return (mostly kube-apiserver start-up).
func BenchmarkBGPAPIServerRecovery(b *testing.B) {
	c := newBGPCluster(b)
	cps := startControlPlanes(b, c)
	c.startAgents(b, []netip.Addr{cp4}, func(i int) []string {
		return []string{"--apiserver-health-url=" + cps[i].APIServerURL + "/livez"}
	})
	c.await(b, c.everyVIP(all()), time.Time{})
	var commitToRoute, killToWithdrawn, restartToRoute []float64
	for b.Loop() {
		for n := range trials {
			i := n % nodes
			stop := time.Now()
			cps[i].StopAPIServer(b)
			gone := c.await(b, c.everyVIP(others(i)), stop)
			killToWithdrawn = append(killToWithdrawn, ms(gone.Sub(stop)))

			start := time.Now()
			cps[i].StartAPIServer(b)
			back := c.await(b, c.everyVIP(all()), start)
			commit, ok := c.commitTime(b, cp4, c.agents[i].Name, start)
			if !ok {
				b.Fatalf("no leader log line committing node %d back as an advertiser of %s", i, cp4)
			}
			commitToRoute = append(commitToRoute, ms(back.Sub(commit)))
			restartToRoute = append(restartToRoute, ms(back.Sub(start)))
		}
	}
	report(b, "commit-to-route", commitToRoute)
	report(b, "kill-to-withdrawn", killToWithdrawn)
	report(b, "restart-to-route", restartToRoute)
	b.ReportMetric(float64(len(commitToRoute)), "samples")
}
