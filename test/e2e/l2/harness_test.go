// Package l2_test runs raftvip's L2 mode for LoadBalancer Services end to end: a
// netns lab of three voters and two workers, a real control plane inside the lab (so
// agents reach it over the lab segment), a client that probes the Service VIPs, and
// the ServiceL2Status objects the leader keeps.
package l2_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/test/cluster"
	"github.com/raftvip/raftvip/test/lab"
	"github.com/raftvip/raftvip/watchers"
)

const (
	echoPort = 9000
	// apiAddr is the client namespace's address; the control plane runs there.
	apiAddr = "198.51.100.50"
	// systemNS is the agents' own namespace (--namespace): their mirror pods and
	// ServiceL2Status objects live there.
	systemNS = "kube-system"
	// appNS holds the test Services and Pods.
	appNS = "l2"
	// labNodes are node0..node4: node0-2 voters, node3-4 workers.
	labNodes = 5
	// mainPool has room for every test Service, both families.
	mainPool = "main=198.51.100.100-198.51.100.199,2001:db8:100::100-2001:db8:100::1ff"
	// excludeLabel keeps a node from announcing any Service VIP.
	excludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"
	// waitLong is a failure deadline, never an expectation: the machine is a shared,
	// loaded two-core box running a control plane and five agents at once.
	waitLong = 2 * time.Minute
)

var workers = []int{3, 4}

// env is the lab, the control plane and the agents.
type env struct {
	l      *lab.Lab
	cp     *cluster.ControlPlane
	dyn    dynamic.Interface
	agents []*agents.Agent
	// pods are the UIDs of the mirror-pod stand-ins, by node name.
	pods map[string]types.UID
	// away are nodes the test cut off: their view of the leader is not asked for.
	away map[int]bool
}

// startEnv builds the lab, starts the control plane in the client namespace, applies
// docs/rbac.yaml and docs/crd-servicel2status.yaml, registers the nodes and their
// mirror-pod stand-ins, starts the agents (workers join), and waits until the
// leader has all five servers in its configuration.
func startEnv(tb testing.TB, pools []string, extra ...string) *env {
	tb.Helper()
	return startEnvWith(tb, envOptions{pools: pools, extra: extra})
}

// envOptions changes how startEnvWith builds the env.
type envOptions struct {
	pools []string
	extra []string
	// prepare runs on the fresh lab before the control plane and the agents start.
	prepare func(l *lab.Lab)
	// perNode adds flags for node i's agent only, after extra.
	perNode func(i int) []string
}

// startEnvWith is startEnv with the lab prepared and some agents' flags changed.
func startEnvWith(tb testing.TB, o envOptions) *env {
	tb.Helper()
	pools, extra := o.pools, o.extra
	l := lab.New(tb, labNodes)
	if o.prepare != nil {
		o.prepare(l)
	}
	l.StartEcho(echoPort)
	cp := cluster.Start(tb, cluster.Options{NetNS: l.Client(), BindAddress: apiAddr})
	dyn, err := dynamic.NewForConfig(cp.RestConfig)
	if err != nil {
		tb.Fatal(err)
	}
	e := &env{l: l, cp: cp, dyn: dyn, pods: map[string]types.UID{}, away: map[int]bool{}}
	e.cp.ApplyDocs(tb, "rbac.yaml")
	e.cp.ApplyDocs(tb, "crd-servicel2status.yaml")
	e.waitCRD(tb)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: systemNS}}
	if _, err := cp.Client.CoreV1().ServiceAccounts(systemNS).Create(tb.Context(), sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		tb.Fatal(err)
	}
	cp.CreateNamespace(tb, appNS)
	for i := range labNodes {
		name := nodeName(i)
		cp.CreateNode(tb, name, l.NodeIP(i).String(), l.NodeIP6(i).String())
		p := cp.CreatePod(tb, cluster.Pod{Namespace: systemNS, Name: "raftvip-" + name, Node: name,
			IPs: []string{l.NodeIP(i).String()}, Labels: map[string]string{"component": "raftvip"}, Ready: true})
		e.pods[name] = p.UID
	}
	flags := []string{"--kubeconfig=" + cp.RaftvipKubeconfig, "--namespace=" + systemNS}
	for _, p := range pools {
		flags = append(flags, "--pool="+p)
	}
	e.agents = agents.StartLab(tb, l, agents.LabOptions{Workers: workers, Extra: append(flags, extra...), PerNode: o.perNode})
	tb.Cleanup(func() {
		if failed(tb) {
			for _, a := range e.agents {
				tb.Logf("---- %s log (last 80 lines above DEBUG) ----\n%s", a.Name, tail(a.Proc.Log(), 80))
			}
		}
	})
	leader := e.leader(tb)
	lab.Eventually(tb, waitLong, "all five servers in the raft configuration and reporting", func() error {
		st, err := leader.Status(tb.Context())
		if err != nil {
			return err
		}
		if len(st.Servers) != labNodes {
			return fmt.Errorf("%d servers: %+v", len(st.Servers), st.Servers)
		}
		s, err := leader.State(tb.Context())
		if err != nil {
			return err
		}
		if len(s.Nodes) != labNodes {
			return fmt.Errorf("%d node reports", len(s.Nodes))
		}
		return nil
	})
	return e
}

func failed(tb testing.TB) bool { return tb.Failed() }

func nodeName(i int) string { return fmt.Sprintf("node%d", i) }

// waitCRD waits until the ServiceL2Status CRD is established and served.
func (e *env) waitCRD(tb testing.TB) {
	tb.Helper()
	lab.Eventually(tb, waitLong, "ServiceL2Status CRD established", func() error {
		crd, err := e.dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).Get(tb.Context(), "servicel2statuses.raftvip.io", metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		established := false
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				established = true
			}
		}
		if !established {
			return fmt.Errorf("conditions %v", conds)
		}
		_, err = e.dyn.Resource(watchers.L2StatusGVR).Namespace(systemNS).List(tb.Context(), metav1.ListOptions{})
		return err
	})
}

// leader waits until every running agent not cut off agrees on one leader.
func (e *env) leader(tb testing.TB) *agents.Agent {
	tb.Helper()
	var skip []*agents.Agent
	for _, a := range e.agents {
		if e.away[a.Index] || a.Proc.Exited() {
			skip = append(skip, a)
		}
	}
	return agents.Leader(tb, e.agents, waitLong, skip...)
}

// cutLink pulls node i's cable.
func (e *env) cutLink(i int) {
	e.away[i] = true
	e.l.CutLink(i)
}

// restoreLink plugs node i's cable back in.
func (e *env) restoreLink(i int) {
	e.l.RestoreLink(i)
	delete(e.away, i)
}

// partition cuts node i off from every other node (not from the client).
func (e *env) partition(i int) {
	e.away[i] = true
	e.l.Partition(i)
}

// heal undoes every partition.
func (e *env) heal() {
	e.l.Heal()
	clear(e.away)
}

// agent returns node i's agent.
func (e *env) agent(i int) *agents.Agent {
	for _, a := range e.agents {
		if a.Index == i {
			return a
		}
	}
	panic(fmt.Sprintf("no agent for node %d", i))
}

// byName returns the agent of a node name.
func (e *env) byName(name string) *agents.Agent {
	for _, a := range e.agents {
		if a.Name == name {
			return a
		}
	}
	panic("no agent " + name)
}

// state reads the replicated state from the current leader.
func (e *env) state(tb testing.TB) raftstore.State {
	tb.Helper()
	var st raftstore.State
	lab.Eventually(tb, waitLong, "the leader's /state", func() error {
		var err error
		ctx, cancel := context.WithTimeout(tb.Context(), 2*time.Second)
		defer cancel()
		st, err = e.leader(tb).State(ctx)
		return err
	})
	return st
}

// setExcluded labels (or unlabels) nodes so they may not announce.
func (e *env) setExcluded(tb testing.TB, excluded bool, nodes ...int) {
	tb.Helper()
	for _, i := range nodes {
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:""}}}`, excludeLabel)
		if !excluded {
			patch = fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, excludeLabel)
		}
		if _, err := e.cp.Client.CoreV1().Nodes().Patch(tb.Context(), nodeName(i), types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			tb.Fatal(err)
		}
	}
}

// service is a LoadBalancer Service in appNS.
func service(name string, local bool, families []corev1.IPFamily, policy corev1.IPFamilyPolicy, selector map[string]string) *corev1.Service {
	etp := corev1.ServiceExternalTrafficPolicyCluster
	if local {
		etp = corev1.ServiceExternalTrafficPolicyLocal
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: appNS},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: etp,
			IPFamilies:            families,
			IPFamilyPolicy:        &policy,
			Selector:              selector,
			Ports:                 []corev1.ServicePort{{Name: "echo", Port: echoPort, Protocol: corev1.ProtocolUDP}},
		},
	}
}

func (e *env) createServices(tb testing.TB, svcs ...*corev1.Service) {
	tb.Helper()
	for _, s := range svcs {
		if _, err := e.cp.Client.CoreV1().Services(s.Namespace).Create(tb.Context(), s, metav1.CreateOptions{}); err != nil {
			tb.Fatalf("create service %s/%s: %v", s.Namespace, s.Name, err)
		}
	}
}

// endpointSlice is a hand-made slice for a selector-less Service: one ready
// endpoint on node. It stands in for the endpointslice controller when a benchmark
// needs a thousand of them faster than the controller's 20 QPS would write them.
func endpointSlice(svc, node string, ip netip.Addr) *discoveryv1.EndpointSlice {
	ready := true
	port, proto := int32(echoPort), corev1.ProtocolUDP
	typ := discoveryv1.AddressTypeIPv4
	if ip.Is6() {
		typ = discoveryv1.AddressTypeIPv6
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: svc + "-bench", Namespace: appNS, Labels: map[string]string{
			discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: "raftvip-e2e"}},
		AddressType: typ,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip.String()}, NodeName: &node,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports: []discoveryv1.EndpointPort{{Port: &port, Protocol: &proto}},
	}
}

// ingress waits until the Service has status.loadBalancer.ingress with n addresses
// and returns them.
func (e *env) ingress(tb testing.TB, name string, n int) []netip.Addr {
	tb.Helper()
	var out []netip.Addr
	lab.Eventually(tb, waitLong, fmt.Sprintf("%d ingress addresses on %s", n, name), func() error {
		s, err := e.cp.Client.CoreV1().Services(appNS).Get(tb.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		out = out[:0]
		for _, in := range s.Status.LoadBalancer.Ingress {
			ip, err := netip.ParseAddr(in.IP)
			if err != nil {
				return err
			}
			out = append(out, ip)
		}
		if len(out) != n {
			return fmt.Errorf("ingress %v", s.Status.LoadBalancer.Ingress)
		}
		return nil
	})
	return out
}

// ownerOf waits until the leader's state gives vip an owner for which accept holds,
// and returns that owner.
func (e *env) ownerOf(tb testing.TB, vip netip.Addr, what string, accept func(raftstore.Owner) bool) raftstore.Owner {
	tb.Helper()
	var o raftstore.Owner
	lab.Eventually(tb, waitLong, fmt.Sprintf("owner of %s: %s", vip, what), func() error {
		st := e.state(tb)
		var ok bool
		o, ok = st.Owners[vip.String()]
		if !ok {
			return errors.New("no owner")
		}
		if !accept(o) {
			return fmt.Errorf("owner %+v", o)
		}
		return nil
	})
	return o
}

// l2Statuses lists the ServiceL2Status objects in the agents' namespace.
func (e *env) l2Statuses(tb testing.TB) []unstructured.Unstructured {
	tb.Helper()
	list, err := e.dyn.Resource(watchers.L2StatusGVR).Namespace(systemNS).List(tb.Context(), metav1.ListOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return list.Items
}

// wantL2Statuses is what the objects must say for the replicated state: one line
// "node namespace/name vips" per announcing node and Service, from the Services'
// ingress addresses and the owners.
func wantL2Statuses(st raftstore.State, ingress map[string][]netip.Addr) []string {
	byNode := map[string][]string{}
	for svc, ips := range ingress {
		for _, ip := range ips {
			if o, ok := st.Owners[ip.String()]; ok {
				k := o.Node + " " + appNS + "/" + svc
				byNode[k] = append(byNode[k], ip.String())
			}
		}
	}
	var out []string
	for k, ips := range byNode {
		watchers.SortVIPs(ips)
		out = append(out, k+" "+strings.Join(ips, ","))
	}
	slices.Sort(out)
	return out
}

// checkL2Statuses waits until the objects say exactly what the state says, each
// labelled, generated from its node's name and owned by its node's mirror pod, and
// no other objects exist.
func (e *env) checkL2Statuses(tb testing.TB, ingress map[string][]netip.Addr) {
	tb.Helper()
	lab.Eventually(tb, waitLong, "ServiceL2Status objects matching the owners", func() error {
		st := e.state(tb)
		want := wantL2Statuses(st, ingress)
		var got []string
		for _, u := range e.l2Statuses(tb) {
			node, _, _ := unstructured.NestedString(u.Object, "status", "node")
			ns, _, _ := unstructured.NestedString(u.Object, "status", "serviceNamespace")
			name, _, _ := unstructured.NestedString(u.Object, "status", "serviceName")
			vips, _, _ := unstructured.NestedStringSlice(u.Object, "status", "vips")
			ifaces, _, _ := unstructured.NestedSlice(u.Object, "status", "interfaces")
			got = append(got, fmt.Sprintf("%s %s/%s %s", node, ns, name, strings.Join(vips, ",")))
			if !strings.HasPrefix(u.GetName(), node+"-") {
				return fmt.Errorf("object %s of node %s not named after it", u.GetName(), node)
			}
			if l := u.GetLabels(); l[watchers.LabelNode] != node || l[watchers.LabelService] != ns+"."+name {
				return fmt.Errorf("object %s labels %v", u.GetName(), l)
			}
			if want := fmt.Sprint([]any{map[string]any{"name": reportedIface(st, node)}}); fmt.Sprint(ifaces) != want {
				return fmt.Errorf("object %s interfaces %v, want %s", u.GetName(), ifaces, want)
			}
			refs := u.GetOwnerReferences()
			if len(refs) != 1 || refs[0].Kind != "Pod" || refs[0].Name != "raftvip-"+node || refs[0].UID != e.pods[node] {
				return fmt.Errorf("object %s owner references %+v, want pod raftvip-%s %s", u.GetName(), refs, node, e.pods[node])
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("objects\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		return nil
	})
}

// reportedIface is the --interface node reported (lab.Iface for every agent the
// harness starts with the default flags).
func reportedIface(st raftstore.State, node string) string {
	for _, l := range st.Nodes[node].Interfaces {
		if l.Default {
			return l.Name
		}
	}
	return lab.Iface
}

// tail is the last n lines of a log that are not DEBUG.
func tail(s string, n int) string {
	lines := slices.DeleteFunc(strings.Split(strings.TrimRight(s, "\n"), "\n"), func(ln string) bool {
		return strings.Contains(ln, "level=DEBUG")
	})
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
