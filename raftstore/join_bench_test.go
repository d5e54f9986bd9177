package raftstore

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkPromotionWithServices reports how long a membership change takes
// as the state grows: a lone bootstrap voter holds the allocations and owners
// of 0 or 1000 Services (snapshotted, so joiners get an InstallSnapshot), then
// two control-plane nodes join together; the clock stops at three voters.
// Real stores and mutual TLS.
func BenchmarkPromotionWithServices(b *testing.B) {
	for _, services := range []int{0, 1000} {
		b.Run(fmt.Sprintf("services-%d", services), func(b *testing.B) {
			var total time.Duration
			for range b.N {
				total += promotionWith(b, services)
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s-join-to-3-voters")
		})
	}
}

func promotionWith(b *testing.B, services int) time.Duration {
	jc := newJoinCluster(b, 0)
	jc.apply(SetPools{Pools: []Pool{{Name: "p", Ranges: []string{"2001:db8:100::/112"}, AutoAssign: true}}})
	const batch = 100
	for start := 0; start < services; start += batch {
		var cmds []Command
		for i := start; i < min(start+batch, services); i++ {
			ip := fmt.Sprintf("2001:db8:100::%x", i+1)
			cmds = append(cmds,
				Allocate{Allocation: Allocation{Service: fmt.Sprintf("ns/svc-%d", i), UID: fmt.Sprintf("uid-%d", i), Pool: "p", IPs: []string{ip}, Ports: []string{"TCP/80"}}},
				SetOwner{VIP: ip, Node: "n1", Service: fmt.Sprintf("ns/svc-%d", i)})
		}
		jc.apply(Batch{Commands: cmds})
	}
	if err := jc.node("n1").raft.Snapshot().Error(); err != nil {
		b.Fatalf("snapshot: %v", err)
	}
	t0 := time.Now()
	jc.joiner("n2", true, jc.addr("n1"))
	n3 := jc.joiner("n3", true, jc.addr("n1"))
	jc.waitVoters(3)
	d := time.Since(t0)
	if got := len(n3.State().Allocations); got != services {
		b.Fatalf("the promoted n3 holds %d allocations, want %d", got, services)
	}
	return d
}
