package watchers

import "github.com/prometheus/client_golang/prometheus"

// Metrics show how well the watcher coalesces: informer events received versus views
// handed to the reconcile.
type Metrics struct {
	events  *prometheus.CounterVec
	views   *prometheus.CounterVec
	batches prometheus.Counter
}

// NewMetrics creates the watcher's series; register Collectors on a registry to
// export them.
func NewMetrics() *Metrics {
	return &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raftvip_kube_events_received_total",
			Help: "Informer events received, by kind (service, endpointslice, node).",
		}, []string{"kind"}),
		views: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raftvip_kube_service_views_total",
			Help: "Service views computed by the worker, by result: changed (handed to the reconcile) or unchanged (skipped).",
		}, []string{"result"}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftvip_kube_reconcile_batches_total",
			Help: "Batches of changed Service views handed to the reconcile.",
		}),
	}
}

// Collectors returns the series for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.events, m.views, m.batches}
}
