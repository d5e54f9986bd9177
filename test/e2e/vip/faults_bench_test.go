package vip_test

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/faults"
	"github.com/raftvip/raftvip/test/lab"
)

// BenchmarkFaultMatrix puts RAFTVIP_BENCH_FAULTS (default 100) faults, drawn at
// random from link cut, partition from the other voters (the client still
// reaches it), SIGKILL (restarted after 1 s) and SIGSTOP (2 s), on the leader
// holding the control-plane VIP, IPv4 and IPv6, one after another from a
// settled cluster. The client asks for both VIPs (ARP and NDP) every 20 ms and
// probes them over UDP every 5 ms throughout each fault and its healing.
// RAFTVIP_BENCH_AGENT_FLAGS changes the agents' flags.
func BenchmarkFaultMatrix(b *testing.B) {
	l := lab.New(b, 3)
	l.StartEcho(echoPort)
	all := agents.StartLab(b, l, agents.LabOptions{VIPs: []string{vip4, vip6}, Extra: append([]string{"--log-level=info"}, strings.Fields(os.Getenv("RAFTVIP_BENCH_AGENT_FLAGS"))...)})
	vips := []netip.Addr{netip.MustParseAddr(vip4), netip.MustParseAddr(vip6)}
	faults.Bench(b, "control-plane VIP", faults.Kinds(l, agents.Binary(b), time.Second, 2*time.Second), func(f faults.Fault) []faults.Result {
		leader := agents.Settled(b, all, 30*time.Second)
		return faults.Run(b, l, leader, vips, echoPort, f, time.Second)
	})
}
