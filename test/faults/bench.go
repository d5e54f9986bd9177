package faults

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Bench runs a fault matrix at scale: RAFTVIP_BENCH_FAULTS (default 100) faults
// drawn at random from kinds, seeded by RAFTVIP_BENCH_SEED (default: the clock,
// printed so a draw can be repeated). trial puts one fault on whichever node
// announces the VIPs under test and returns what the client saw. It prints and
// reports, per kind, the p50 and max outage and, per protocol, the requests the
// client sent and how many two MACs answered.
func Bench(b *testing.B, what string, kinds []Fault, trial func(f Fault) []Result) {
	n := 100
	if v, err := strconv.Atoi(os.Getenv("RAFTVIP_BENCH_FAULTS")); err == nil && v > 0 {
		n = v
	}
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("RAFTVIP_BENCH_SEED"), 10, 64); err == nil {
		seed = v
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	gaps := map[string][]time.Duration{}
	requests, doubles := map[string]int{}, map[string]int{}
	for range n {
		f := kinds[rng.IntN(len(kinds))]
		for _, r := range trial(f) {
			proto := "ARP"
			if r.VIP.Is6() {
				proto = "NDP"
			}
			gaps[f.Name] = append(gaps[f.Name], r.Gap)
			requests[proto] += r.Answers.Requests
			doubles[proto] += len(r.Answers.Double)
			if len(r.Answers.Double) > 0 {
				b.Logf("%s: %s answered twice %v", f.Name, r.VIP, r.Answers.Double)
			}
		}
	}
	fmt.Printf("%s fault matrix, %d faults (seed %d)\n", what, n, seed)
	for _, proto := range []string{"ARP", "NDP"} {
		if requests[proto] > 0 {
			fmt.Printf("  %s: %d of %d requests answered by two MACs\n", proto, doubles[proto], requests[proto])
			b.ReportMetric(float64(doubles[proto]), proto+"-double-answers")
		}
	}
	for _, f := range kinds {
		gs := gaps[f.Name]
		if len(gs) == 0 {
			continue
		}
		slices.Sort(gs)
		p50, mx := gs[len(gs)/2], gs[len(gs)-1]
		b.ReportMetric(float64(p50.Milliseconds()), f.Name+"-gap-p50-ms")
		b.ReportMetric(float64(mx.Milliseconds()), f.Name+"-gap-max-ms")
		fmt.Printf("  %s over %d VIP moves: outage p50 %s max %s\n", f.Name, len(gs), p50, mx)
	}
}
