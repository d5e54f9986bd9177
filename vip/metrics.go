package vip

import "github.com/prometheus/client_golang/prometheus"

// Metrics of this package. They are plain package variables so that every
// Announcer and Holder in the process feeds the same series; the daemon
// registers them once through Collectors.
var (
	announcements = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "raftvip",
		Subsystem: "vip",
		Name:      "announcements_total",
		Help:      "Announcement bursts (gratuitous ARP or unsolicited neighbor advertisements) sent, by address family.",
	}, []string{"family"})
	announcementPackets = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "raftvip",
		Subsystem: "vip",
		Name:      "announcement_packets_total",
		Help:      "Gratuitous ARP frames and unsolicited neighbor advertisements written, by address family.",
	}, []string{"family"})
	announceErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "raftvip",
		Subsystem: "vip",
		Name:      "announce_errors_total",
		Help:      "Announcement bursts that failed to send at least one packet, by address family.",
	}, []string{"family"})
	addressesAdded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "raftvip",
		Subsystem: "vip",
		Name:      "addresses_added_total",
		Help:      "VIP addresses put on the interface, by address family.",
	}, []string{"family"})
	addressesRemoved = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "raftvip",
		Subsystem: "vip",
		Name:      "addresses_removed_total",
		Help:      "VIP addresses taken off the interface, by address family.",
	}, []string{"family"})
	held = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "raftvip",
		Subsystem: "vip",
		Name:      "held",
		Help:      "VIP addresses this node currently holds, by interface and address family.",
	}, []string{"interface", "family"})
)

// Collectors returns the package's metrics for the daemon to register on its
// /metrics registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{announcements, announcementPackets, announceErrors, addressesAdded, addressesRemoved, held}
}
