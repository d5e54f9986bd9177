package main

import (
	"slices"
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// BenchmarkJoinToVoters reports how long a kubeadm-style control plane takes to
// reach three voters: cp1 is up with --bootstrap and leads, then cp2 and cp3
// start together with --join and --control-plane; the clock stops when cp1's
// configuration lists all three as voters (both joined as nonvoters, caught up
// and were promoted together). Real agents, TLS and stores, on loopback; three
// trials per op (make bench runs one op), reported as median and max.
func BenchmarkJoinToVoters(b *testing.B) {
	var ds []time.Duration
	for range b.N * 3 {
		ds = append(ds, joinToVoters(b))
	}
	slices.Sort(ds)
	b.ReportMetric(ds[len(ds)/2].Seconds(), "s-p50-join-to-3-voters")
	b.ReportMetric(ds[len(ds)-1].Seconds(), "s-max-join-to-3-voters")
}

func joinToVoters(b *testing.B) time.Duration {
	ta := newTLSAgents(b, "rv-joinbench")
	// Each trial's agents stop before the next starts, not at the end.
	defer ta.killAll()
	cp1 := ta.start("cp1", "cp1", "--bootstrap")
	waitAgreement(b, ta.procs, "")
	join := "--join=" + ta.raft["cp1"]
	t0 := time.Now()
	ta.start("cp2", "cp2", join, "--control-plane")
	ta.start("cp3", "cp3", join, "--control-plane")
	deadline := t0.Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		st, err := getStatus(cp1.status)
		voters := 0
		for _, s := range st.Servers {
			if s.Suffrage == raftstore.SuffrageVoter {
				voters++
			}
		}
		if err == nil && voters == 3 {
			return time.Since(t0)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatal("the joiners were never promoted to three voters")
	return 0
}
