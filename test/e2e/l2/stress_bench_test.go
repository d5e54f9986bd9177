package l2_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/raftvip/raftvip/test/cluster"
)

// ownerChangeLine matches one series of the leader's owner-change counter.
var ownerChangeLine = regexp.MustCompile(`(?m)^raftvip_vip_owner_changes_total\{[^}]*\} (\S+)$`)

// BenchmarkServiceVIPMovesUnderCPUStress keeps every CPU busy inside the lab for
// RAFTVIP_BENCH_STRESS (default 5m) while a worker announces a Service VIP, and
// counts what moved without a fault: service VIP owner changes the leaders
// committed, and Raft terms. A node-down or fence timeout too short for the
// machine shows here as moves, before it shows in production.
// RAFTVIP_BENCH_AGENT_FLAGS adds agent flags.
func BenchmarkServiceVIPMovesUnderCPUStress(b *testing.B) {
	d := 5 * time.Minute
	if v, err := time.ParseDuration(os.Getenv("RAFTVIP_BENCH_STRESS")); err == nil {
		d = v
	}
	e := startEnv(b, []string{mainPool}, append([]string{"--log-level=info"}, strings.Fields(os.Getenv("RAFTVIP_BENCH_AGENT_FLAGS"))...)...)
	e.cp.CreatePod(b, cluster.Pod{Namespace: appNS, Name: "web-1", Node: "node0", IPs: []string{"10.244.0.10"},
		Labels: map[string]string{"app": "web"}, Ready: true})
	e.setExcluded(b, true, 0, 1, 2)
	e.createServices(b, service("s", false, v4Only, corev1.IPFamilyPolicySingleStack, map[string]string{"app": "web"}))
	vip := e.ingress(b, "s", 1)[0]
	owner := e.state(b).Owners[vip.String()].Node
	term := leaderTerm(b, e)
	before := ownerChanges(b, e)
	e.l.BusyCPUs(d)
	time.Sleep(d)
	moves := ownerChanges(b, e) - before
	elections := leaderTerm(b, e) - term
	now := e.state(b).Owners[vip.String()].Node
	b.ReportMetric(moves, "service-vip-moves")
	b.ReportMetric(float64(elections), "elections")
	fmt.Printf("during %s of CPU stress: %v service VIP owner changes, %d elections (owner %s -> %s)\n", d, moves, elections, owner, now)
}

// ownerChanges sums the owner-change counters of every agent: each counts only
// what it committed while it led.
func ownerChanges(b *testing.B, e *env) float64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var sum float64
	for _, a := range e.agents {
		text, err := a.Metrics(ctx)
		if err != nil {
			b.Fatalf("metrics of %s: %v", a.Name, err)
		}
		for _, m := range ownerChangeLine.FindAllStringSubmatch(text, -1) {
			v, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				b.Fatalf("%s: %q: %v", a.Name, m[0], err)
			}
			sum += v
		}
	}
	return sum
}

// leaderTerm is the current leader's Raft term.
func leaderTerm(b *testing.B, e *env) uint64 {
	b.Helper()
	st, err := e.leader(b).Status(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	return st.Term
}
