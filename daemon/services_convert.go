package daemon

import (
	"net/netip"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/raftvip/raftvip/daemon/ipam"
	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/watchers"
)

// Conversions between Kubernetes views, the allocator and the replicated state.

// request turns a Service view into the allocator's input.
func request(v *watchers.View) ipam.Request {
	r := ipam.Request{Service: v.Key, Pool: v.Pool, RequestedIPs: v.RequestedIPs, SharingKey: v.SharingKey, StatusIPs: v.Ingress,
		LocalTraffic: v.LocalTraffic, Selector: v.Selector, Created: v.Created}
	for _, f := range v.Families {
		switch f {
		case corev1.IPv4Protocol:
			r.Families = append(r.Families, ipam.V4)
		case corev1.IPv6Protocol:
			r.Families = append(r.Families, ipam.V6)
		}
	}
	switch v.Policy {
	case corev1.IPFamilyPolicyPreferDualStack:
		r.Policy = ipam.PreferDualStack
	case corev1.IPFamilyPolicyRequireDualStack:
		r.Policy = ipam.RequireDualStack
	}
	for _, p := range v.Ports {
		r.Ports = append(r.Ports, ipam.Port{Protocol: p.Protocol, Port: p.Port})
	}
	return r
}

// raftAllocation is the FSM form of an allocation: canonical address text, ports as
// PROTOCOL/NUMBER.
func raftAllocation(a ipam.Allocation, uid types.UID) raftstore.Allocation {
	out := raftstore.Allocation{Service: a.Service, UID: string(uid), Pool: a.Pool, SharingKey: a.SharingKey, IPs: addrStrings(a.IPs),
		LocalTraffic: a.LocalTraffic, Selector: a.Selector}
	for _, p := range a.Ports {
		out.Ports = append(out.Ports, p.String())
	}
	return out
}

// ipamAllocation reads back what raftAllocation wrote; entries it cannot parse are
// skipped (only this code writes them).
func ipamAllocation(a raftstore.Allocation) ipam.Allocation {
	out := ipam.Allocation{Service: a.Service, Pool: a.Pool, SharingKey: a.SharingKey, LocalTraffic: a.LocalTraffic, Selector: a.Selector}
	for _, s := range a.IPs {
		if ip, err := netip.ParseAddr(s); err == nil {
			out.IPs = append(out.IPs, ip)
		}
	}
	for _, s := range a.Ports {
		proto, num, ok := strings.Cut(s, "/")
		n, err := strconv.ParseInt(num, 10, 32)
		if ok && err == nil {
			out.Ports = append(out.Ports, ipam.Port{Protocol: proto, Port: int32(n)})
		}
	}
	return out
}

func ipamAllocations(m map[string]raftstore.Allocation) []ipam.Allocation {
	out := make([]ipam.Allocation, 0, len(m))
	for _, a := range m {
		out = append(out, ipamAllocation(a))
	}
	return out
}

func addrStrings(ips []netip.Addr) []string {
	if len(ips) == 0 {
		return nil
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

func joinIPs(ips []netip.Addr) string { return strings.Join(addrStrings(ips), ", ") }
