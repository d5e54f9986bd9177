package raftstore

import (
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// nodeMetrics holds the node's Prometheus collectors. They are not
// registered anywhere; the daemon registers Collectors() in its registry.
type nodeMetrics struct {
	applyLatency     prometheus.Histogram
	leaderChanges    prometheus.Counter
	stateChanges     *prometheus.CounterVec
	failedHeartbeats *prometheus.CounterVec
	all              []prometheus.Collector
}

func newNodeMetrics(n *Node) *nodeMetrics {
	m := &nodeMetrics{
		applyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "raftvip_raft_apply_duration_seconds",
			Help:    "Time from submitting a command on the leader to it being applied there.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftvip_raft_leader_changes_total",
			Help: "Times this node saw a different node become leader.",
		}),
		stateChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raftvip_raft_state_transitions_total",
			Help: "Raft state transitions of this node, by new state.",
		}, []string{"state"}),
		failedHeartbeats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raftvip_raft_failed_heartbeats_total",
			Help: "Heartbeats this node failed to deliver as leader, by peer.",
		}, []string{"peer"}),
	}
	m.all = []prometheus.Collector{m.applyLatency, m.leaderChanges, m.stateChanges, m.failedHeartbeats, n.mem.refused}
	for _, st := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
		m.all = append(m.all, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "raftvip_raft_state",
			Help:        "1 for the node's current Raft state, 0 for the others.",
			ConstLabels: prometheus.Labels{"state": st.String()},
		}, func() float64 {
			if n.raft.State() == st {
				return 1
			}
			return 0
		}))
	}
	gauge := func(name, help string, f func() float64) {
		m.all = append(m.all, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("raftvip_raft_term", "Current Raft term.", func() float64 { return float64(n.raft.CurrentTerm()) })
	gauge("raftvip_raft_commit_index", "Highest committed log index known here.", func() float64 { return float64(n.raft.CommitIndex()) })
	gauge("raftvip_raft_applied_index", "Highest log index applied to the FSM here.", func() float64 { return float64(n.fsm.Index()) })
	gauge("raftvip_fsm_halted", "1 when the state machine halted at a log entry this binary cannot decode (see /raft/status).", func() float64 {
		if n.fsm.Halted() != nil {
			return 1
		}
		return 0
	})
	gauge("raftvip_fsm_rejected_commands", "Log entries the FSM refused (bad or unknown commands).", func() float64 { return float64(n.fsm.Rejected()) })
	fsmSize := func(name, help string, pick func(p, a, o, nd int) int) {
		gauge(name, help, func() float64 { return float64(pick(n.fsm.sizes())) })
	}
	fsmSize("raftvip_fsm_pools", "Pools in the replicated state.", func(p, _, _, _ int) int { return p })
	fsmSize("raftvip_fsm_allocations", "Service allocations in the replicated state.", func(_, a, _, _ int) int { return a })
	fsmSize("raftvip_fsm_owners", "VIPs with an owner in the replicated state.", func(_, _, o, _ int) int { return o })
	fsmSize("raftvip_fsm_nodes", "Node reports in the replicated state.", func(_, _, _, nd int) int { return nd })
	return m
}

// Collectors returns the node's Prometheus collectors: Raft state, term,
// indexes, leader changes, apply latency and FSM sizes. Register them once.
func (n *Node) Collectors() []prometheus.Collector {
	return append([]prometheus.Collector(nil), n.metrics.all...)
}
