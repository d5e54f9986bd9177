package assign

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func vip(s string) netip.Addr { return netip.MustParseAddr(s) }

func vips(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, vip(s))
	}
	return out
}

// cluster is an externalTrafficPolicy: Cluster Service with usable endpoints.
func cluster(key string, addrs ...string) Service {
	return Service{Key: key, VIPs: vips(addrs...), HasUsableEndpoint: true}
}

// local is an externalTrafficPolicy: Local Service with endpoints on the given nodes.
func local(key string, endpointNodes []string, addrs ...string) Service {
	return Service{Key: key, VIPs: vips(addrs...), LocalTraffic: true, EndpointNodes: endpointNodes, HasUsableEndpoint: len(endpointNodes) > 0}
}

func healthy(names ...string) []Node {
	var out []Node
	for _, n := range names {
		out = append(out, Node{Name: n, Healthy: true})
	}
	return out
}

func owners(pairs ...string) Current {
	c := Current{}
	for i := 0; i+1 < len(pairs); i += 2 {
		c[vip(pairs[i])] = Owner{Node: pairs[i+1], Epoch: uint64(i + 1)}
	}
	return c
}

// format prints decisions one per line as "VIP service from->to (reason)".
func format(ds []Decision) string {
	var b strings.Builder
	for _, d := range ds {
		svc := d.Service
		if len(d.SharedWith) > 0 {
			svc += "+" + strings.Join(d.SharedWith, "+")
		}
		fmt.Fprintf(&b, "%s %s %s->%s (%s)\n", d.VIP, svc, orDash(d.From), orDash(d.To), d.Reason)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// apply commits decisions to a copy of current, bumping epochs as the FSM does.
func apply(current Current, ds []Decision) Current {
	next := Current{}
	for k, v := range current {
		next[k] = v
	}
	for _, d := range ds {
		if d.To == "" {
			delete(next, d.VIP)
			continue
		}
		next[d.VIP] = Owner{Node: d.To, Epoch: current[d.VIP].Epoch + 1}
	}
	return next
}

func loads(current Current) map[string]int {
	l := map[string]int{}
	for _, o := range current {
		l[o.Node]++
	}
	return l
}

func spread(l map[string]int, nodes []string) (lo, hi int) {
	lo = -1
	for _, n := range nodes {
		if lo < 0 || l[n] < lo {
			lo = l[n]
		}
		hi = max(hi, l[n])
	}
	return lo, hi
}

// checkSettled asserts the properties every Assign result must have: decisions are
// sorted and real changes, applying them leaves nothing more to do, every VIP of a
// group sits on one node, and a Service sharing no VIP is announced exactly when it
// has an eligible node, by one of them.
func checkSettled(t *testing.T, services []Service, nodes []Node, current Current, ds []Decision) Current {
	t.Helper()
	for i, d := range ds {
		if d.From == d.To {
			t.Fatalf("decision without a change: %+v", d)
		}
		if i > 0 && ds[i-1].VIP.Compare(d.VIP) >= 0 {
			t.Fatalf("decisions not sorted by VIP:\n%s", format(ds))
		}
		if d.Reason == "" {
			t.Fatalf("decision without a reason: %+v", d)
		}
	}
	next := apply(current, ds)
	if again := Assign(services, nodes, next); len(again) != 0 {
		t.Fatalf("not settled after applying; second round:\n%s", format(again))
	}
	for _, s := range services {
		var on []string
		for _, v := range s.VIPs {
			if o, ok := next[v]; ok {
				on = append(on, o.Node)
			}
		}
		slices.Sort(on)
		if len(slices.Compact(on)) > 1 {
			t.Fatalf("%s is split over %v", s.Key, on)
		}
		if sharesVIP(s, services) {
			continue
		}
		elig := Eligible(s, nodes)
		if len(elig) == 0 && len(on) > 0 || len(elig) > 0 && len(on) != len(s.VIPs) {
			t.Fatalf("%s: eligible %v but owners %v", s.Key, elig, on)
		}
		if len(on) > 0 && !slices.Contains(elig, on[0]) {
			t.Fatalf("%s announced by %s, not eligible (%v)", s.Key, on[0], elig)
		}
	}
	return next
}

func sharesVIP(s Service, services []Service) bool {
	for _, o := range services {
		if o.Key == s.Key {
			continue
		}
		for _, v := range o.VIPs {
			if slices.Contains(s.VIPs, v) {
				return true
			}
		}
	}
	return false
}
