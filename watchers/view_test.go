package watchers

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func ptr[T any](v T) *T { return &v }

func TestUsable(t *testing.T) {
	tru, fal := ptr(true), ptr(false)
	tests := []struct {
		name                        string
		ready, serving, terminating *bool
		want                        bool
	}{
		{"ready", tru, tru, fal, true},
		{"ready only", tru, nil, nil, true},
		{"all unset counts as ready", nil, nil, nil, true},
		{"not ready, not serving", fal, fal, fal, false},
		{"not ready, serving unset", fal, nil, nil, false},
		{"serving only", nil, tru, nil, true},
		{"ready unset, not serving", nil, fal, nil, false},
		{"not ready but serving", fal, tru, fal, true},
		{"terminating and serving", fal, tru, tru, true},
		{"terminating, not serving", fal, fal, tru, false},
		{"terminating with nothing else set", nil, nil, tru, false},
		{"publishNotReadyAddresses: ready while not serving", tru, fal, fal, true},
		{"publishNotReadyAddresses: ready while terminating", tru, fal, tru, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := discoveryv1.EndpointConditions{Ready: tt.ready, Serving: tt.serving, Terminating: tt.terminating}
			if got := Usable(c); got != tt.want {
				t.Fatalf("Usable(ready=%v serving=%v terminating=%v) = %v, want %v",
					str(tt.ready), str(tt.serving), str(tt.terminating), got, tt.want)
			}
		})
	}
}

func str(b *bool) string {
	if b == nil {
		return "unset"
	}
	if *b {
		return "true"
	}
	return "false"
}

// lbService is a single-stack IPv4 LoadBalancer Service without a class.
func lbService(ns, name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeLoadBalancer,
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports:      []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
}

type ep struct {
	node                        string
	ready, serving, terminating *bool
}

func slice(ns, svc, name string, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i, e := range eps {
		d := discoveryv1.Endpoint{
			Addresses:  []string{"10.244.0." + string(rune('1'+i))},
			Conditions: discoveryv1.EndpointConditions{Ready: e.ready, Serving: e.serving, Terminating: e.terminating},
		}
		if e.node != "" {
			d.NodeName = ptr(e.node)
		}
		s.Endpoints = append(s.Endpoints, d)
	}
	return s
}

func TestComputeViewAggregatesSlices(t *testing.T) {
	tru, fal := ptr(true), ptr(false)
	svc := lbService("ns", "web")
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	all := []*discoveryv1.EndpointSlice{
		slice("ns", "web", "web-v4", ep{node: "b", ready: tru}, ep{node: "a", ready: fal, serving: fal}),
		slice("ns", "web", "web-v6", ep{node: "c", ready: fal, serving: tru, terminating: tru}, ep{node: "b", ready: tru}),
		slice("ns", "web", "web-3", ep{node: "d"}, ep{ready: tru}),
		// Not this Service's: another name, another namespace, no label.
		slice("ns", "api", "api-1", ep{node: "x", ready: tru}),
		slice("other", "web", "web-1", ep{node: "y", ready: tru}),
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "manual"}, Endpoints: []discoveryv1.Endpoint{{NodeName: ptr("z")}}},
	}
	v := ComputeView(svc, all, "")
	if !v.HasEndpoints {
		t.Fatal("HasEndpoints = false, want true")
	}
	if want := []string{"b", "c", "d"}; !slices.Equal(v.EndpointNodes, want) {
		t.Fatalf("EndpointNodes = %v, want %v (a is neither ready nor serving; x, y, z belong elsewhere)", v.EndpointNodes, want)
	}

	// With Cluster traffic policy the nodes do not matter and are not tracked.
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	v = ComputeView(svc, all, "")
	if !v.HasEndpoints || v.EndpointNodes != nil || v.LocalTraffic {
		t.Fatalf("Cluster policy: HasEndpoints=%v EndpointNodes=%v LocalTraffic=%v, want true, nil, false", v.HasEndpoints, v.EndpointNodes, v.LocalTraffic)
	}

	v = ComputeView(svc, []*discoveryv1.EndpointSlice{slice("ns", "web", "w", ep{node: "a", ready: fal, serving: fal})}, "")
	if v.HasEndpoints {
		t.Fatal("no usable endpoint: HasEndpoints = true")
	}
}

func TestComputeViewOwnership(t *testing.T) {
	mine, theirs := ptr("raftvip.io/lb"), ptr("other.example/lb")
	tests := []struct {
		name    string
		typ     corev1.ServiceType
		class   *string
		lbClass string
		want    bool
	}{
		{"no class, no --lb-class", corev1.ServiceTypeLoadBalancer, nil, "", true},
		{"empty class, no --lb-class", corev1.ServiceTypeLoadBalancer, ptr(""), "", true},
		{"other class, no --lb-class", corev1.ServiceTypeLoadBalancer, theirs, "", false},
		{"our class", corev1.ServiceTypeLoadBalancer, mine, *mine, true},
		{"no class, --lb-class set", corev1.ServiceTypeLoadBalancer, nil, *mine, false},
		{"other class, --lb-class set", corev1.ServiceTypeLoadBalancer, theirs, *mine, false},
		{"ClusterIP", corev1.ServiceTypeClusterIP, nil, "", false},
		{"NodePort", corev1.ServiceTypeNodePort, nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := lbService("ns", "s")
			svc.Spec.Type, svc.Spec.LoadBalancerClass = tt.typ, tt.class
			svc.Annotations = map[string]string{AnnotationPool: "p"}
			v := ComputeView(svc, nil, tt.lbClass)
			if v.Ours != tt.want {
				t.Fatalf("Ours = %v, want %v", v.Ours, tt.want)
			}
			if !v.Ours && (v.Pool != "" || v.Ports != nil) {
				t.Fatalf("a Service that is not ours carries spec details: %+v", v)
			}
			if v.Key != "ns/s" || v.UID != "uid-s" {
				t.Fatalf("key %q uid %q", v.Key, v.UID)
			}
		})
	}
}

func TestComputeViewSpec(t *testing.T) {
	svc := lbService("ns", "dual")
	svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
	svc.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicyRequireDualStack)
	svc.Spec.Ports = []corev1.ServicePort{{Port: 53, Protocol: corev1.ProtocolUDP}, {Port: 443}}
	svc.Annotations = map[string]string{
		AnnotationPool:            "blue",
		AnnotationAllowSharedIP:   "k1",
		AnnotationLoadBalancerIPs: " 2001:db8:100::10 , 198.51.100.10 ",
	}
	mode := corev1.LoadBalancerIPModeVIP
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "2001:db8:100::10", IPMode: &mode}, {IP: "198.51.100.10", IPMode: &mode}}
	v := ComputeView(svc, nil, "")
	if v.Err != nil {
		t.Fatal(v.Err)
	}
	if want := []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}; !slices.Equal(v.Families, want) || v.Policy != corev1.IPFamilyPolicyRequireDualStack {
		t.Fatalf("families %v policy %q", v.Families, v.Policy)
	}
	if v.Pool != "blue" || v.SharingKey != "k1" {
		t.Fatalf("pool %q sharing key %q", v.Pool, v.SharingKey)
	}
	wantIPs := []netip.Addr{netip.MustParseAddr("2001:db8:100::10"), netip.MustParseAddr("198.51.100.10")}
	if !slices.Equal(v.RequestedIPs, wantIPs) {
		t.Fatalf("requested %v, want %v", v.RequestedIPs, wantIPs)
	}
	if want := []Port{{"UDP", 53}, {"TCP", 443}}; !slices.Equal(v.Ports, want) {
		t.Fatalf("ports %v, want %v (empty protocol means TCP)", v.Ports, want)
	}
	if !slices.Equal(v.Ingress, wantIPs) || !v.IngressIsVIP {
		t.Fatalf("ingress %v isVIP=%v", v.Ingress, v.IngressIsVIP)
	}

	delete(svc.Annotations, AnnotationLoadBalancerIPs)
	svc.Spec.LoadBalancerIP = "198.51.100.99"
	if v := ComputeView(svc, nil, ""); !slices.Equal(v.RequestedIPs, []netip.Addr{netip.MustParseAddr("198.51.100.99")}) {
		t.Fatalf("spec.loadBalancerIP: requested %v", v.RequestedIPs)
	}
}

func TestComputeViewMalformedRequest(t *testing.T) {
	for _, tt := range []struct{ annotation, specIP, wantErr string }{
		{"198.51.100.x", "", `annotation raftvip.io/loadBalancerIPs: "198.51.100.x" is not an IP address`},
		{"198.51.100.1,nonsense", "", `"nonsense" is not an IP address`},
		{"fe80::1%eth0", "", "not a plain IPv4 or IPv6 address"},
		{"::ffff:198.51.100.1", "", "not a plain IPv4 or IPv6 address"},
		{"", "300.1.1.1", `spec.loadBalancerIP: "300.1.1.1" is not an IP address`},
	} {
		svc := lbService("ns", "bad")
		svc.Annotations = map[string]string{AnnotationLoadBalancerIPs: tt.annotation}
		svc.Spec.LoadBalancerIP = tt.specIP
		v := ComputeView(svc, nil, "")
		if v.Err == nil || !strings.Contains(v.Err.Error(), tt.wantErr) {
			t.Errorf("annotation %q spec %q: err %v, want it to mention %q", tt.annotation, tt.specIP, v.Err, tt.wantErr)
		}
		if v.RequestedIPs != nil {
			t.Errorf("annotation %q: requested %v despite the error", tt.annotation, v.RequestedIPs)
		}
	}
}

func TestComputeViewIngressNotVIP(t *testing.T) {
	proxy := corev1.LoadBalancerIPModeProxy
	vip := corev1.LoadBalancerIPModeVIP
	for name, ing := range map[string][]corev1.LoadBalancerIngress{
		"no ipMode":     {{IP: "198.51.100.1"}},
		"proxy mode":    {{IP: "198.51.100.1", IPMode: &proxy}},
		"hostname":      {{IP: "198.51.100.1", IPMode: &vip, Hostname: "lb.example"}},
		"ports":         {{IP: "198.51.100.1", IPMode: &vip, Ports: []corev1.PortStatus{{Port: 80}}}},
		"not an IP":     {{IP: "garbage", IPMode: &vip}},
		"one of two ok": {{IP: "198.51.100.1", IPMode: &vip}, {IP: "198.51.100.2"}},
	} {
		svc := lbService("ns", "s")
		svc.Status.LoadBalancer.Ingress = ing
		if v := ComputeView(svc, nil, ""); v.IngressIsVIP {
			t.Errorf("%s: IngressIsVIP = true", name)
		}
	}
	svc := lbService("ns", "s")
	if v := ComputeView(svc, nil, ""); !v.IngressIsVIP || v.Ingress != nil {
		t.Errorf("no ingress: IngressIsVIP=%v Ingress=%v, want true and nil", v.IngressIsVIP, v.Ingress)
	}
}

func TestViewHash(t *testing.T) {
	base := func() *View {
		return &View{
			Key: "ns/s", Namespace: "ns", Name: "s", UID: "u", Ours: true,
			Families: []corev1.IPFamily{corev1.IPv4Protocol}, Pool: "p",
			RequestedIPs: []netip.Addr{netip.MustParseAddr("198.51.100.1")}, SharingKey: "k",
			Ports: []Port{{"TCP", 80}}, LocalTraffic: true, HasEndpoints: true, EndpointNodes: []string{"a"},
			Ingress: []netip.Addr{netip.MustParseAddr("198.51.100.1")}, IngressIsVIP: true,
		}
	}
	if a, b := base(), base(); a.Hash() != b.Hash() {
		t.Fatal("equal views hash differently")
	}
	mutations := map[string]func(v *View){
		"uid":       func(v *View) { v.UID = "u2" },
		"ours":      func(v *View) { v.Ours = false },
		"families":  func(v *View) { v.Families = append(v.Families, corev1.IPv6Protocol) },
		"policy":    func(v *View) { v.Policy = corev1.IPFamilyPolicyPreferDualStack },
		"pool":      func(v *View) { v.Pool = "q" },
		"requested": func(v *View) { v.RequestedIPs = nil },
		"sharing":   func(v *View) { v.SharingKey = "" },
		"ports":     func(v *View) { v.Ports[0].Port = 81 },
		"local":     func(v *View) { v.LocalTraffic = false },
		"endpoints": func(v *View) { v.HasEndpoints = false },
		"nodes":     func(v *View) { v.EndpointNodes = []string{"a", "b"} },
		"ingress":   func(v *View) { v.Ingress = nil },
		"vip":       func(v *View) { v.IngressIsVIP = false },
		"err":       func(v *View) { v.Err = errNoServiceLabel },
	}
	for name, mutate := range mutations {
		v := base()
		mutate(v)
		if v.Hash() == base().Hash() {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
}

func TestComputeViewAliases(t *testing.T) {
	for _, tt := range []struct {
		name     string
		ann      map[string]string
		specIP   string
		wantPool string
		wantIPs  string
		wantErr  string
	}{
		{name: "metallb pool", ann: map[string]string{"metallb.io/address-pool": "blue"}, wantPool: "blue"},
		{name: "metallb ips", ann: map[string]string{"metallb.io/loadBalancerIPs": "198.51.100.7,2001:db8:100::7"}, wantIPs: "198.51.100.7,2001:db8:100::7"},
		{name: "kube-vip ips", ann: map[string]string{"kube-vip.io/loadbalancerIPs": "198.51.100.8"}, wantIPs: "198.51.100.8"},
		{name: "aliases agree", ann: map[string]string{AnnotationPool: "blue", "metallb.io/address-pool": "blue", AnnotationLoadBalancerIPs: "198.51.100.7,2001:db8:100::7", "metallb.io/loadBalancerIPs": "2001:db8:100::7, 198.51.100.7"}, wantPool: "blue", wantIPs: "198.51.100.7,2001:db8:100::7"},
		{name: "annotation and spec agree", ann: map[string]string{"metallb.io/loadBalancerIPs": "198.51.100.7"}, specIP: "198.51.100.7", wantIPs: "198.51.100.7"},
		{name: "pools disagree", ann: map[string]string{AnnotationPool: "blue", "metallb.io/address-pool": "red"}, wantErr: `annotations raftvip.io/pool ("blue") and metallb.io/address-pool ("red") disagree`},
		{name: "ips disagree", ann: map[string]string{"metallb.io/loadBalancerIPs": "198.51.100.7", "kube-vip.io/loadbalancerIPs": "198.51.100.8"}, wantErr: "annotation metallb.io/loadBalancerIPs (198.51.100.7) and annotation kube-vip.io/loadbalancerIPs (198.51.100.8) disagree"},
		{name: "annotation and spec disagree", ann: map[string]string{AnnotationLoadBalancerIPs: "198.51.100.7"}, specIP: "198.51.100.9", wantErr: "annotation raftvip.io/loadBalancerIPs (198.51.100.7) and spec.loadBalancerIP (198.51.100.9) disagree"},
		{name: "malformed alias", ann: map[string]string{"kube-vip.io/loadbalancerIPs": "x"}, wantErr: `annotation kube-vip.io/loadbalancerIPs: "x" is not an IP address`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			svc := lbService("ns", "a")
			svc.Annotations = tt.ann
			svc.Spec.LoadBalancerIP = tt.specIP
			obj, _ := Transform(svc)
			v := ComputeView(obj.(*corev1.Service), nil, "")
			if tt.wantErr != "" {
				if v.Err == nil || !strings.Contains(v.Err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", v.Err, tt.wantErr)
				}
				return
			}
			if v.Err != nil {
				t.Fatal(v.Err)
			}
			if v.Pool != tt.wantPool || joinAddrs(v.RequestedIPs) != tt.wantIPs {
				t.Fatalf("pool %q ips %q, want %q %q", v.Pool, joinAddrs(v.RequestedIPs), tt.wantPool, tt.wantIPs)
			}
		})
	}
}

func TestComputeViewSelectorAndCreated(t *testing.T) {
	svc := lbService("ns", "a")
	svc.Spec.Selector = map[string]string{"tier": "web", "app": "shop"}
	svc.CreationTimestamp = metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	v := ComputeView(svc, nil, "")
	if v.Selector != "app=shop,tier=web" || !v.Created.Equal(svc.CreationTimestamp.Time) {
		t.Fatalf("selector %q created %v", v.Selector, v.Created)
	}
	before := v.Hash()
	svc.Spec.Selector["tier"] = "api"
	if ComputeView(svc, nil, "").Hash() == before {
		t.Fatal("a selector change left the view's hash unchanged")
	}
}
