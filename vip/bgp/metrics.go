package bgp

import "github.com/prometheus/client_golang/prometheus"

// Metrics of this package. They are package variables so that the daemon
// registers them once through Collectors, whatever Speaker is running.
var (
	sessionUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "raftvip",
		Subsystem: "bgp",
		Name:      "session_up",
		Help:      "1 while the BGP session with the peer is established, 0 otherwise.",
	}, []string{"peer"})
	advertised = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "raftvip",
		Subsystem: "bgp",
		Name:      "advertised_prefixes",
		Help:      "VIP host prefixes this node advertises to its BGP peers, by address family.",
	}, []string{"family"})
	sessionTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "raftvip",
		Subsystem: "bgp",
		Name:      "session_transitions_total",
		Help:      "BGP session state changes into or out of established, by peer and new state.",
	}, []string{"peer", "state"})
)

// Collectors returns the package's metrics for the daemon to register on its
// /metrics registry: a session gauge per peer, advertised prefixes per family
// and session flaps.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{sessionUp, advertised, sessionTransitions}
}
