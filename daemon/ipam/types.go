package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Family is an IP address family, as in a Service's spec.ipFamilies.
type Family int

// The two families. The values are not 0 so a forgotten field is caught, not taken
// for IPv4.
const (
	V4 Family = 4
	V6 Family = 6
)

// String names the family as Kubernetes does.
func (f Family) String() string {
	switch f {
	case V4:
		return "IPv4"
	case V6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

func familyOf(ip netip.Addr) Family {
	switch {
	case ip.Is4():
		return V4
	case ip.Is6() && !ip.Is4In6():
		return V6
	}
	return 0
}

// Policy mirrors spec.ipFamilyPolicy: how many families a Service needs.
type Policy int

// The zero value is SingleStack, the Kubernetes default.
const (
	SingleStack Policy = iota
	PreferDualStack
	RequireDualStack
)

// String names the policy as Kubernetes does.
func (p Policy) String() string {
	switch p {
	case SingleStack:
		return "SingleStack"
	case PreferDualStack:
		return "PreferDualStack"
	case RequireDualStack:
		return "RequireDualStack"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// Port is one Service port; Services sharing an address must not use the same one.
// An empty Protocol means TCP, the Kubernetes default.
type Port struct {
	Protocol string
	Port     int32
}

// String prints the port as PROTOCOL/NUMBER.
func (p Port) String() string { return fmt.Sprintf("%s/%d", p.Protocol, p.Port) }

// normPorts upper-cases protocols, defaults them to TCP, sorts and deduplicates, so
// equal port sets compare equal whatever order the Service lists them in.
func normPorts(ports []Port) []Port {
	if len(ports) == 0 {
		return nil
	}
	out := make([]Port, len(ports))
	for i, p := range ports {
		p.Protocol = strings.ToUpper(p.Protocol)
		if p.Protocol == "" {
			p.Protocol = "TCP"
		}
		out[i] = p
	}
	slices.SortFunc(out, func(a, b Port) int {
		if c := strings.Compare(a.Protocol, b.Protocol); c != 0 {
			return c
		}
		return int(a.Port) - int(b.Port)
	})
	return slices.Compact(out)
}

// portClash returns a port both normalised lists use.
func portClash(a, b []Port) (Port, bool) {
	for _, p := range a {
		if slices.Contains(b, p) {
			return p, true
		}
	}
	return Port{}, false
}

// Request is what one Service asks of the allocator, already read out of the Service
// object by the watcher, so this package needs no Kubernetes types.
type Request struct {
	Service      string       // namespace/name, the allocation's key
	Families     []Family     // spec.ipFamilies, primary first; empty means [V4]
	Policy       Policy       // spec.ipFamilyPolicy
	Pool         string       // raftvip.io/pool; "" means any auto-assign pool, by name
	RequestedIPs []netip.Addr // raftvip.io/loadBalancerIPs or spec.loadBalancerIP
	SharingKey   string       // raftvip.io/allow-shared-ip
	Ports        []Port       // the Service's ports, checked when sharing an address
	LocalTraffic bool         // externalTrafficPolicy: Local, checked when sharing
	Selector     string       // spec.selector as sorted k=v pairs, checked when sharing
	// StatusIPs are the addresses status.loadBalancer.ingress shows now: what MetalLB,
	// kube-vip or a lost Raft state left there. A Service without an allocation adopts
	// them when they are inside a pool and free, so a migration or a restore moves no
	// live address.
	StatusIPs []netip.Addr
	// Created is the Service's creationTimestamp; Compare uses it so the oldest of
	// two Services claiming one status address wins it.
	Created time.Time
}

// Conflict is a status address Allocate could not adopt because another Service
// holds it. Both Services get an Event: nothing is reassigned silently.
type Conflict struct {
	IP     netip.Addr
	Holder string
}

// Allocation is what the FSM stores per Service: its addresses (primary family
// first), the pool they came from, and what sharing them needs (key and ports).
type Allocation struct {
	Service    string
	Pool       string
	IPs        []netip.Addr
	SharingKey string
	Ports      []Port
	// Two Services share an address only when both are externalTrafficPolicy
	// Cluster, or both have the same non-empty selector (MetalLB's rule): with Local
	// the VIP's node must have the endpoints of every Service on it.
	LocalTraffic bool
	Selector     string
}

func (a Allocation) clone() Allocation {
	a.IPs = slices.Clone(a.IPs)
	a.Ports = slices.Clone(a.Ports)
	return a
}

func (a *Allocation) equal(b *Allocation) bool {
	return a.Service == b.Service && a.Pool == b.Pool && a.SharingKey == b.SharingKey &&
		a.LocalTraffic == b.LocalTraffic && a.Selector == b.Selector &&
		slices.Equal(a.IPs, b.IPs) && slices.Equal(a.Ports, b.Ports)
}

// Result is Allocate's answer. When Err is set the Service stays Pending: Allocation
// holds no IPs and, if the Service had an allocation, Changed is true so the caller
// releases it. Reason is one human-readable line for the Service's Event; it is set
// whenever Changed is true, and also when an address was kept outside every pool.
type Result struct {
	Allocation Allocation
	Changed    bool
	Reason     string
	Err        error
	// Conflicts lists the status addresses the Service wanted to adopt but another
	// Service holds.
	Conflicts []Conflict
}

// Errors Allocate wraps, so callers and metrics can classify why a Service is Pending.
var (
	ErrInvalidRequest = errors.New("invalid request")
	ErrUnknownPool    = errors.New("unknown pool")
	ErrNotInPool      = errors.New("address not in pool")
	ErrInUse          = errors.New("address in use")
	ErrNoFamily       = errors.New("no pool serves the family")
	ErrExhausted      = errors.New("pool exhausted")
	ErrNoDualStack    = errors.New("no dual-stack pool")
)

// failure carries a sentinel for errors.Is while printing only its own message, so
// the Event text reads naturally.
type failure struct {
	kind error
	msg  string
}

func (f *failure) Error() string { return f.msg }
func (f *failure) Unwrap() error { return f.kind }

func fail(kind error, format string, args ...any) error {
	return &failure{kind: kind, msg: fmt.Sprintf(format, args...)}
}
