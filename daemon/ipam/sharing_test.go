package ipam

import (
	"net/netip"
	"testing"
)

// TestSharingPolicy: MetalLB's rule. Two Services share an address only when both are
// externalTrafficPolicy Cluster or both select the same pods; the refusal names it.
func TestSharingPolicy(t *testing.T) {
	const rule = "sharing needs both Services externalTrafficPolicy Cluster or the same selector"
	for _, tt := range []struct {
		name           string
		holderLocal    bool
		holderSelector string
		local          bool
		selector       string
		refused        bool
	}{
		{name: "both Cluster, different selectors", holderSelector: "app=a", selector: "app=b"},
		{name: "both Cluster, no selectors"},
		{name: "both Local, same selector", holderLocal: true, holderSelector: "app=a", local: true, selector: "app=a"},
		{name: "Local and Cluster, same selector", holderLocal: true, holderSelector: "app=a", selector: "app=a"},
		{name: "both Local, different selectors", holderLocal: true, holderSelector: "app=a", local: true, selector: "app=b", refused: true},
		{name: "holder Local, other Cluster, different selectors", holderLocal: true, holderSelector: "app=a", selector: "app=b", refused: true},
		{name: "holder Cluster, other Local, different selectors", holderSelector: "app=a", local: true, selector: "app=b", refused: true},
		{name: "both Local, no selectors", holderLocal: true, local: true, refused: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			holder := shared(alloc("ns/tcp", "a", "10.0.0.1"), "k", tcp(80))
			holder.LocalTraffic, holder.Selector = tt.holderLocal, tt.holderSelector
			r := req("other/udp", SingleStack, V4)
			r.SharingKey, r.Ports = "k", []Port{udp(53)}
			r.LocalTraffic, r.Selector = tt.local, tt.selector
			r.RequestedIPs = []netip.Addr{netip.MustParseAddr("10.0.0.1")}
			c := allocCase{pools: []string{"a=10.0.0.0/24"}, others: []Allocation{holder}, req: r, pool: "a", changed: true}
			if tt.refused {
				c.pool, c.changed, c.err, c.msg = "", false, ErrInUse, "ip 10.0.0.1 is shared with ns/tcp, but "+rule
			} else {
				c.want = []string{"10.0.0.1"}
			}
			c.run(t)
		})
	}
}

// TestSharingPolicyAutoPick: a Service whose policy refuses the address shared under its
// key gets a fresh one instead of joining it.
func TestSharingPolicyAutoPick(t *testing.T) {
	holder := shared(alloc("ns/tcp", "a", "10.0.0.1"), "k", tcp(80))
	holder.LocalTraffic, holder.Selector = true, "app=a"
	r := req("ns/udp", SingleStack, V4)
	r.SharingKey, r.Ports = "k", []Port{udp(53)}
	r.LocalTraffic, r.Selector = true, "app=a"
	allocCase{pools: []string{"a=10.0.0.0/24"}, others: []Allocation{holder}, req: r, want: []string{"10.0.0.1"}, pool: "a", changed: true}.run(t)
	r.Selector = "app=b"
	allocCase{pools: []string{"a=10.0.0.0/24"}, others: []Allocation{holder}, req: r, want: []string{"10.0.0.2"}, pool: "a", changed: true}.run(t)
}
