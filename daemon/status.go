package daemon

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/raftvip/raftvip/raftstore"
)

// RaftStatus is the body of GET /raft/status: the Raft view of this node plus what
// the daemon itself wants an operator to notice. `raftvip status` decodes it too.
type RaftStatus struct {
	raftstore.Status
	Voter             bool     `json:"voter"`
	APIServerHealthy  *bool    `json:"apiserver_healthy,omitempty"`
	ControlPlaneVIPs  []string `json:"control_plane_vips,omitempty"`
	HeldVIPs          []string `json:"held_vips"`
	PoolFlagsMismatch bool     `json:"pool_flags_mismatch"`
	// LBClass is the committed loadBalancerClass ("" for Services without one);
	// absent until a leader commits it. LBClassMismatch is set when this node's
	// --lb-class differs, with the detail in Warnings.
	LBClass         *string  `json:"lb_class,omitempty"`
	LBClassMismatch bool     `json:"lb_class_mismatch"`
	Warnings        []string `json:"warnings,omitempty"`
	// BGPSessions are this node's sessions with its routers (bgp mode only).
	BGPSessions []BGPSession `json:"bgp_sessions,omitempty"`
	// Certificate is the Raft peer certificate in use and its renewals; absent on
	// an insecure transport.
	Certificate *raftstore.CertStatus `json:"certificate,omitempty"`
}

// BGPSession is one router session in /raft/status, so an operator sees at a glance
// which routers hear this node and how many VIPs they were sent.
type BGPSession struct {
	Peer          string `json:"peer"`
	State         string `json:"state"` // idle, connect, active, opensent, openconfirm, established
	UptimeSeconds int64  `json:"uptime_seconds"`
	PrefixesSent  uint64 `json:"prefixes_sent"`
}

// statusSource is what the status server reads; the daemon implements it so the
// server stays read-only and testable without Raft.
type statusSource interface {
	RaftStatus() RaftStatus
	State() raftstore.State
	// StuckLoops names the loops that have not completed a pass within their bound.
	StuckLoops() []string
}

// newStatusHandler serves the read-only status endpoints listed in DESIGN.md.
func newStatusHandler(src statusSource, reg *prometheus.Registry, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			log.Debug("status: write response", "err", err)
		}
	}
	mux.HandleFunc("GET /raft/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, src.RaftStatus())
	})
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		if !fromThisHost(r) {
			http.Error(w, "/state lists every allocation and VIP owner and is served to clients on this node only", http.StatusForbidden)
			return
		}
		writeJSON(w, http.StatusOK, src.State())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if h := src.RaftStatus().Halted; h != nil {
			http.Error(w, h.String(), http.StatusServiceUnavailable)
			return
		}
		if stuck := src.StuckLoops(); len(stuck) > 0 {
			http.Error(w, "stuck loops: "+strings.Join(stuck, ", "), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		st := src.RaftStatus()
		if st.Leader.ID == "" {
			http.Error(w, "no known leader", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// listenStatus binds the status server. A status address that is not loopback
// serves /raft/status and /metrics to anyone who can reach it, so that is
// logged once as a warning (see docs/operations.md for what they reveal).
func listenStatus(addr string, log *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, flagErr("status-address", addr, "cannot listen: %v", err)
	}
	if !isLoopback(ln.Addr()) {
		log.Warn("status server reachable from other hosts without authentication: /raft/status shows members and addresses, /metrics the node's state; /state stays local-only",
			"address", ln.Addr().String())
	}
	return ln, nil
}

// isLoopback reports whether a listener's address accepts only local clients.
func isLoopback(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// fromThisHost reports whether a request comes from this node: over loopback,
// or to one of the node's own addresses from that same address (the source
// address the kernel picks when a host connects to itself).
func fromThisHost(r *http.Request) bool {
	remote, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	if remote.Addr().Unmap().IsLoopback() {
		return true
	}
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	lp, err := netip.ParseAddrPort(local.String())
	return err == nil && lp.Addr().Unmap() == remote.Addr().Unmap()
}
