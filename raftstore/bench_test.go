package raftstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// electionTrials is how many leader losses each election benchmark times
// at least. Trials continue until a second has passed too, so the testing
// package runs the benchmark once instead of growing b.N (the trials
// ignore b.N: each is a leader loss, not an operation).
const electionTrials = 20

// moreTrials reports whether a fixed-trial benchmark should go on.
func moreTrials(done int, start time.Time) bool {
	return done < electionTrials || time.Since(start) < time.Second
}

// hashicorpDefaults are hashicorp/raft's DefaultConfig timeouts, the
// baseline our DefaultTimeouts are compared with.
func hashicorpDefaults() Timeouts {
	d := raft.DefaultConfig()
	t := DefaultTimeouts()
	t.Heartbeat, t.Election, t.LeaderLease, t.Commit = d.HeartbeatTimeout, d.ElectionTimeout, d.LeaderLeaseTimeout, d.CommitTimeout
	// Our leader-loss check only at raft's own timeout: raft's timing as it is.
	t.LeaderLoss = d.HeartbeatTimeout
	return t
}

// reportDurations reports p50, p90 and max in milliseconds, replacing the
// meaningless ns/op of a benchmark that runs a fixed number of trials.
func reportDurations(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(ds[len(ds)/2]), "p50-ms")
	b.ReportMetric(ms(ds[len(ds)*9/10]), "p90-ms")
	b.ReportMetric(ms(ds[len(ds)-1]), "max-ms")
	b.Logf("trials=%d sorted=%v", len(ds), ds)
}

// waitNewLeader waits for one of nodes to report leadership on its
// LeadershipChanges channel.
func waitNewLeader(b *testing.B, nodes []*Node) *Node {
	b.Helper()
	deadline := time.After(waitTimeout)
	for {
		for _, n := range nodes {
			select {
			case v := <-n.LeadershipChanges():
				// A stale true from before the trial is ignored by
				// checking that the node leads now.
				if v && n.IsLeader() {
					return n
				}
			default:
			}
		}
		select {
		case <-deadline:
			b.Fatal("no new leader")
		case <-time.After(200 * time.Microsecond):
		}
	}
}

func drainLeadership(nodes []*Node) {
	for _, n := range nodes {
		for len(n.LeadershipChanges()) > 0 {
			<-n.LeadershipChanges()
		}
	}
}

// settle waits until all three nodes run, agree on a leader and have
// applied everything it committed, so the next trial starts clean.
func settle(c *cluster) *Node {
	l := c.leader()
	commit := l.raft.CommitIndex()
	waitFor(c.t, "followers to apply the leader's log", func() bool {
		for _, n := range c.running() {
			if n.raft.AppliedIndex() < commit {
				return false
			}
		}
		return true
	})
	return c.leader()
}

func others(c *cluster, not *Node) []*Node {
	var out []*Node
	for _, n := range c.running() {
		if n != not {
			out = append(out, n)
		}
	}
	return out
}

// BenchmarkLeaderElection kills the leader of a three-node mutual-TLS
// loopback cluster and times until a survivor becomes leader, for our
// DefaultTimeouts and for hashicorp/raft's defaults.
func BenchmarkLeaderElection(b *testing.B) {
	for _, tc := range []struct {
		name string
		tm   Timeouts
	}{
		{"raftvip-defaults", DefaultTimeouts()},
		{"hashicorp-defaults", hashicorpDefaults()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := newCluster(b, 3, newTestCA(b, "ca"), tc.tm)
			c.apply(SetPools{Pools: []Pool{{Name: "default", Ranges: []string{"198.51.100.0/24"}}}})
			var ds []time.Duration
			for began := time.Now(); moreTrials(len(ds), began); {
				l := settle(c)
				survivors := others(c, l)
				drainLeadership(survivors)
				start := time.Now()
				c.kill(l.id)
				waitNewLeader(b, survivors)
				ds = append(ds, time.Since(start))
				c.start(l.id)
			}
			reportDurations(b, ds)
		})
	}
}

// BenchmarkGracefulHandover times a leader's Shutdown until another node
// leads: leadership is transferred, no election timeout is waited out.
func BenchmarkGracefulHandover(b *testing.B) {
	c := newCluster(b, 3, newTestCA(b, "ca"), DefaultTimeouts())
	c.apply(SetPools{Pools: []Pool{{Name: "default", Ranges: []string{"198.51.100.0/24"}}}})
	var ds []time.Duration
	for began := time.Now(); moreTrials(len(ds), began); {
		l := settle(c)
		survivors := others(c, l)
		drainLeadership(survivors)
		start := time.Now()
		done := make(chan struct{})
		go func() {
			c.stop(l.id)
			close(done)
		}()
		waitNewLeader(b, survivors)
		ds = append(ds, time.Since(start))
		<-done
		c.start(l.id)
	}
	reportDurations(b, ds)
}

// BenchmarkIdleUnderCPULoad runs an idle three-node cluster with our
// defaults for ten seconds while shell busy-loops (two per CPU) compete for
// the CPUs, and reports the elections that happened: each one is a
// spurious leader change a VIP would follow.
func BenchmarkIdleUnderCPULoad(b *testing.B) {
	c := newCluster(b, 3, newTestCA(b, "ca"), DefaultTimeouts())
	settle(c)
	before := candidacies(b, c)
	stop := startCPUHogs(b)
	time.Sleep(10 * time.Second)
	stop()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(candidacies(b, c)-before, "elections/10s")
}

// BenchmarkApply measures committed commands per second on a three-node
// mutual-TLS cluster with fsync on, from many concurrent appliers, one
// command per Apply and in batches of 100.
func BenchmarkApply(b *testing.B) {
	for _, tc := range []struct {
		name           string
		workers, batch int
	}{
		{"single-64workers", 64, 1},
		{"batch100-8workers", 8, 100},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := newCluster(b, 3, newTestCA(b, "ca"), DefaultTimeouts())
			settle(c)
			var next atomic.Int64
			var wg sync.WaitGroup
			var failed atomic.Value
			b.ResetTimer()
			start := time.Now()
			for range tc.workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						first := int(next.Add(int64(tc.batch))) - tc.batch
						if first >= b.N {
							return
						}
						last := min(first+tc.batch, b.N)
						var cmd Command = allocation(first)
						if tc.batch > 1 {
							batch := Batch{}
							for i := first; i < last; i++ {
								batch.Commands = append(batch.Commands, allocation(i))
							}
							cmd = batch
						}
						if err := applyAnywhere(c, cmd); err != nil {
							failed.Store(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commands/s")
		})
	}
}

// applyAnywhere applies on the current leader, retrying across elections.
func applyAnywhere(c *cluster, cmd Command) error {
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		for _, n := range c.running() {
			if !n.IsLeader() {
				continue
			}
			err := n.Apply(cmd, 10*time.Second)
			if err == nil {
				return nil
			}
			if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrLeadershipLost) {
				return err
			}
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("no leader applied %s", cmd.Type())
}

// BenchmarkDial measures one connection set-up between two stream layers
// on loopback, plain and with the mutual TLS handshake, including the
// server-side verification before raft would see the connection.
func BenchmarkDial(b *testing.B) {
	ca := newTestCA(b, "ca")
	for _, tc := range []struct {
		name           string
		server, client *tls.Config
	}{
		{"plain", nil, nil},
		{"mutual-tls", ca.tlsConfig(b, "server"), ca.tlsConfig(b, "client")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			server, err := newStreamLayer("127.0.0.1:0", "", tc.server, testLogger())
			if err != nil {
				b.Fatal(err)
			}
			defer server.Close()
			client, err := newStreamLayer("127.0.0.1:0", "", tc.client, testLogger())
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			addr := raft.ServerAddress(server.Addr().String())
			go func() {
				for {
					c, err := server.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			for b.Loop() {
				c, err := client.Dial(addr, time.Second)
				if err != nil {
					b.Fatal(err)
				}
				// One byte round trip: with TLS 1.3 the server verifies
				// the client only after the client's handshake returns.
				if _, err := c.Write([]byte{0}); err != nil {
					b.Fatal(err)
				}
				_, _ = c.Read(make([]byte, 1))
				c.Close()
			}
		})
	}
}
