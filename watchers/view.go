// Package watchers is raftvip's only door to the Kubernetes API. It keeps warm
// informers on Services, EndpointSlices and Nodes, folds each Service and all its
// EndpointSlices into one View, coalesces bursts of changes in a workqueue keyed by
// Service, hands only changed views to the leader's reconcile, and writes what the
// leader decided back: status.loadBalancer.ingress and Events.
//
// It decides nothing: which addresses a Service gets is the daemon's business
// (daemon/ipam); this package only reads and writes.
package watchers

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Annotations a Service uses to steer its allocation. They are the only annotations
// the informer transform keeps (with every other raftvip.io/ one).
const (
	AnnotationPrefix          = "raftvip.io/"
	AnnotationPool            = "raftvip.io/pool"
	AnnotationLoadBalancerIPs = "raftvip.io/loadBalancerIPs"
	AnnotationAllowSharedIP   = "raftvip.io/allow-shared-ip"
)

// Aliases other load balancers' users already carry on their Services, read as the
// raftvip annotation they mean, so a migrated Service needs no edit (docs/migrate.md).
// The informer transform keeps them too.
var (
	PoolAliases = []string{AnnotationPool, "metallb.io/address-pool"}
	IPsAliases  = []string{AnnotationLoadBalancerIPs, "metallb.io/loadBalancerIPs", "kube-vip.io/loadbalancerIPs"}
)

// Port is one Service port, the part of a port that matters for sharing an address.
type Port struct {
	Protocol string
	Port     int32
}

// View is everything the leader's reconcile needs to know about one Service, with its
// EndpointSlices already aggregated. It is plain data computed from the informer
// caches, so two views of an unchanged Service are equal and the second is skipped.
type View struct {
	Key       string // namespace/name, the workqueue and allocation key
	Namespace string
	Name      string
	UID       types.UID
	// Ingress is status.loadBalancer.ingress as IPs, in order; IngressIsVIP is true
	// when every entry is a bare IP with ipMode VIP, the form raftvip writes.
	Ingress      []netip.Addr
	IngressIsVIP bool

	// Ours is true for type LoadBalancer Services of our class (spec.loadBalancerClass
	// equal to --lb-class, or unset when --lb-class is empty). The fields below
	// are only filled for such Services.
	Ours bool

	Families     []corev1.IPFamily     // spec.ipFamilies, primary first
	Policy       corev1.IPFamilyPolicy // spec.ipFamilyPolicy; empty means SingleStack
	Pool         string                // raftvip.io/pool
	RequestedIPs []netip.Addr          // raftvip.io/loadBalancerIPs, else spec.loadBalancerIP
	SharingKey   string                // raftvip.io/allow-shared-ip
	Ports        []Port
	LocalTraffic bool // externalTrafficPolicy: Local
	// Selector is spec.selector as sorted k=v pairs joined by ",": two Services
	// with Local traffic share an address only with the same selector.
	Selector string
	// Created is the creationTimestamp: conflicts over one address go oldest-first.
	Created time.Time

	// HasEndpoints says whether any endpoint of the Service is usable (see Usable).
	HasEndpoints bool
	// EndpointNodes are the nodes with a usable endpoint, sorted. Only filled with
	// LocalTraffic, where they decide who may announce; with Cluster any node may, so
	// pods moving between nodes must not make the view change.
	EndpointNodes []string

	// Err is set when a raftvip.io annotation or spec.loadBalancerIP is malformed: the
	// Service gets an Event and stays as it is, without affecting any other.
	Err error
}

// Usable reports whether an endpoint may receive traffic. ready=true is usable (the
// endpointslice controller sets it for publishNotReadyAddresses Services even before
// the pods are ready, and that is honoured); otherwise serving decides; with both
// unset the endpoint counts as ready, as the EndpointSlice API says, except when it is
// terminating: a terminating endpoint is usable only through ready or serving.
func Usable(c discoveryv1.EndpointConditions) bool {
	if c.Ready != nil && *c.Ready {
		return true
	}
	if c.Serving != nil {
		return *c.Serving
	}
	return c.Ready == nil && (c.Terminating == nil || !*c.Terminating)
}

// ComputeView builds the view of svc from its EndpointSlices (slices of other
// Services are ignored). lbClass is the --lb-class this agent serves.
func ComputeView(svc *corev1.Service, slices []*discoveryv1.EndpointSlice, lbClass string) *View {
	v := &View{
		Key:       svc.Namespace + "/" + svc.Name,
		Namespace: svc.Namespace,
		Name:      svc.Name,
		UID:       svc.UID,
		Ours:      IsOurs(svc, lbClass),
	}
	v.Ingress, v.IngressIsVIP = ingress(svc.Status.LoadBalancer.Ingress)
	if !v.Ours {
		return v
	}
	v.Families = append([]corev1.IPFamily(nil), svc.Spec.IPFamilies...)
	if svc.Spec.IPFamilyPolicy != nil {
		v.Policy = *svc.Spec.IPFamilyPolicy
	}
	v.SharingKey = svc.Annotations[AnnotationAllowSharedIP]
	v.Pool, v.Err = pool(svc.Annotations)
	if v.Err == nil {
		v.RequestedIPs, v.Err = requestedIPs(svc)
	}
	for _, p := range svc.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = string(corev1.ProtocolTCP)
		}
		v.Ports = append(v.Ports, Port{Protocol: proto, Port: p.Port})
	}
	v.LocalTraffic = svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	v.Selector = selectorText(svc.Spec.Selector)
	v.Created = svc.CreationTimestamp.Time
	v.HasEndpoints, v.EndpointNodes = endpoints(svc, slices, v.LocalTraffic)
	return v
}

// IsOurs reports whether this agent allocates for svc: type LoadBalancer and the
// class it serves (no class when lbClass is empty).
func IsOurs(svc *corev1.Service, lbClass string) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	if lbClass == "" {
		return svc.Spec.LoadBalancerClass == nil || *svc.Spec.LoadBalancerClass == ""
	}
	return svc.Spec.LoadBalancerClass != nil && *svc.Spec.LoadBalancerClass == lbClass
}

// selectorText is a canonical form of a selector, so equal selectors compare equal.
func selectorText(sel map[string]string) string {
	pairs := make([]string, 0, len(sel))
	for k, v := range sel {
		pairs = append(pairs, k+"="+v)
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ",")
}

// pool reads the pool annotation or one of its aliases; two that disagree are an
// error naming both.
func pool(ann map[string]string) (string, error) {
	from, name := "", ""
	for _, k := range PoolAliases {
		v := strings.TrimSpace(ann[k])
		switch {
		case v == "":
		case from == "":
			from, name = k, v
		case v != name:
			return "", fmt.Errorf("annotations %s (%q) and %s (%q) disagree", from, name, k, v)
		}
	}
	return name, nil
}

// requestedIPs reads raftvip.io/loadBalancerIPs (a comma list) or one of its aliases,
// and the deprecated spec.loadBalancerIP. Sources that are set must agree (the same
// addresses, in any order), as MetalLB refuses an annotation and a spec that differ.
func requestedIPs(svc *corev1.Service) ([]netip.Addr, error) {
	from := ""
	var out []netip.Addr
	sources := append(append([]string(nil), IPsAliases...), "spec.loadBalancerIP")
	for _, k := range sources {
		text, source := svc.Annotations[k], "annotation "+k
		if k == "spec.loadBalancerIP" {
			text, source = svc.Spec.LoadBalancerIP, k
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		ips, err := parseIPs(source, text)
		if err != nil {
			return nil, err
		}
		if from == "" {
			from, out = source, ips
			continue
		}
		if !sameAddrs(out, ips) {
			return nil, fmt.Errorf("%s (%s) and %s (%s) disagree; set one of them", from, joinAddrs(out), source, joinAddrs(ips))
		}
	}
	return out, nil
}

func parseIPs(source, text string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, f := range strings.Split(text, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		ip, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an IP address", source, f)
		}
		if ip.Zone() != "" || ip.Is4In6() {
			return nil, fmt.Errorf("%s: %q is not a plain IPv4 or IPv6 address", source, f)
		}
		out = append(out, ip)
	}
	return out, nil
}

func sameAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for _, ip := range a {
		if !slices.Contains(b, ip) {
			return false
		}
	}
	return true
}

func joinAddrs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}

// endpoints aggregates every slice labelled with svc's name: whether any endpoint is
// usable and, when nodes matter, which nodes have one.
func endpoints(svc *corev1.Service, all []*discoveryv1.EndpointSlice, wantNodes bool) (bool, []string) {
	usable := false
	var nodes []string
	for _, s := range all {
		if s.Namespace != svc.Namespace || s.Labels[discoveryv1.LabelServiceName] != svc.Name {
			continue
		}
		for _, ep := range s.Endpoints {
			if !Usable(ep.Conditions) {
				continue
			}
			usable = true
			if wantNodes && ep.NodeName != nil && *ep.NodeName != "" {
				nodes = append(nodes, *ep.NodeName)
			}
		}
	}
	slices.Sort(nodes)
	return usable, slices.Compact(nodes)
}

func ingress(in []corev1.LoadBalancerIngress) ([]netip.Addr, bool) {
	var ips []netip.Addr
	vip := true
	for _, e := range in {
		ip, err := netip.ParseAddr(e.IP)
		if err != nil || e.Hostname != "" || len(e.Ports) > 0 || e.IPMode == nil || *e.IPMode != corev1.LoadBalancerIPModeVIP {
			vip = false
		}
		if err == nil {
			ips = append(ips, ip)
		}
	}
	return ips, vip
}

// Hash is a fingerprint of the whole view; equal views hash equal. The workqueue
// worker compares it with the last view it handed out to skip unchanged Services.
func (v *View) Hash() uint64 {
	h := fnv.New64a()
	v.write(h)
	return h.Sum64()
}

func (v *View) write(w io.Writer) {
	fmt.Fprintf(w, "%s|%s|%t|%v|%s|%q|%v|%q|%v|%t|%t|%q|%v|%t|%q|%d|", v.Key, v.UID, v.Ours, v.Families, v.Policy,
		v.Pool, v.RequestedIPs, v.SharingKey, v.Ports, v.LocalTraffic, v.HasEndpoints, v.EndpointNodes,
		v.Ingress, v.IngressIsVIP, v.Selector, v.Created.UnixNano())
	if v.Err != nil {
		io.WriteString(w, v.Err.Error())
	}
}

// errNoServiceLabel marks an EndpointSlice that belongs to no Service; such slices
// (made by hand, without the label) are ignored.
var errNoServiceLabel = errors.New("endpointslice has no " + discoveryv1.LabelServiceName + " label")

// sliceServiceKey returns the namespace/name of the Service an EndpointSlice belongs to.
func sliceServiceKey(s *discoveryv1.EndpointSlice) (string, error) {
	name := s.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return "", errNoServiceLabel
	}
	return s.Namespace + "/" + name, nil
}
