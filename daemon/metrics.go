package daemon

import "github.com/prometheus/client_golang/prometheus"

// metrics are the daemon's own Prometheus series; raft and vip register theirs.
type metrics struct {
	failovers  prometheus.Counter
	handovers  prometheus.Counter
	apiHealthy prometheus.Gauge
	reports    *prometheus.CounterVec
	moves      *prometheus.CounterVec
	// nodeGoneRemovals counts members removed because their Node was deleted.
	nodeGoneRemovals prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		failovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftvip_control_plane_vip_acquisitions_total",
			Help: "Times this node took the control-plane VIP (became raft leader).",
		}),
		handovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftvip_leadership_handovers_total",
			Help: "Leadership transfers started by this node because its local kube-apiserver was unhealthy.",
		}),
		apiHealthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "raftvip_local_apiserver_healthy",
			Help: "1 when the local kube-apiserver answered its liveness check, 0 otherwise.",
		}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raftvip_node_reports_total",
			Help: "Node health reports sent to the leader, by result.",
		}, []string{"result"}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raftvip_vip_owner_changes_total",
			Help: "Service VIP owner changes committed by this node as leader, by reason.",
		}, []string{"reason"}),
		nodeGoneRemovals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftvip_members_removed_node_deleted_total",
			Help: "Raft members this node as leader removed because their Kubernetes Node object was deleted.",
		}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.failovers, m.handovers, m.apiHealthy, m.reports, m.moves, m.nodeGoneRemovals}
}
