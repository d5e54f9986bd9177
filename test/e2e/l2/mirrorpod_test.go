package l2_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/raftvip/raftvip/test/cluster"
	"github.com/raftvip/raftvip/test/lab"
)

// recreateMirrorPod deletes node's mirror-pod stand-in and creates it again, as
// the kubelet does after a manifest change: same name, new UID.
func (e *env) recreateMirrorPod(tb testing.TB, i int) {
	tb.Helper()
	name := nodeName(i)
	if err := e.cp.Client.CoreV1().Pods(systemNS).Delete(tb.Context(), "raftvip-"+name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		tb.Fatal(err)
	}
	lab.Eventually(tb, waitLong, "old mirror pod of "+name+" gone", func() error {
		if _, err := e.cp.Client.CoreV1().Pods(systemNS).Get(tb.Context(), "raftvip-"+name, metav1.GetOptions{}); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
	p := e.cp.CreatePod(tb, cluster.Pod{Namespace: systemNS, Name: "raftvip-" + name, Node: name,
		IPs: []string{e.l.NodeIP(i).String()}, Labels: map[string]string{"component": "raftvip"}, Ready: true})
	e.pods[name] = p.UID
}

// mirrorPodEnv has Services main0..3 announced by node1 alone, their objects in place.
func mirrorPodEnv(tb testing.TB) (*env, map[string][]netip.Addr) {
	e := startEnv(tb, []string{mainPool}, "--log-level=info")
	e.cp.CreatePod(tb, cluster.Pod{Namespace: appNS, Name: "web-1", Node: "node0", IPs: []string{"10.244.0.10"},
		Labels: map[string]string{"app": "web"}, Ready: true})
	e.setExcluded(tb, true, 0, 2, 3, 4)
	ingress := map[string][]netip.Addr{}
	for i := range 4 {
		n := fmt.Sprintf("main%d", i)
		e.createServices(tb, service(n, false, v4Only, corev1.IPFamilyPolicySingleStack, map[string]string{"app": "web"}))
		ingress[n] = e.ingress(tb, n, 1)
	}
	e.checkL2Statuses(tb, ingress)
	return e, ingress
}

// TestMirrorPodRecreatedRepointsL2Status: the mirror pod of the announcing node is
// replaced; its ServiceL2Status objects end up owned by the new pod (by UID) and
// still say what the state says, the garbage collector notwithstanding.
func TestMirrorPodRecreatedRepointsL2Status(t *testing.T) {
	e, ingress := mirrorPodEnv(t)
	e.recreateMirrorPod(t, 1)
	e.checkL2Statuses(t, ingress)
}

// BenchmarkMirrorPodRepoint: time from creating the replacement mirror pod to
// every object of its node owned by it.
func BenchmarkMirrorPodRepoint(b *testing.B) {
	e, ingress := mirrorPodEnv(b)
	for range b.N {
		start := time.Now()
		e.recreateMirrorPod(b, 1)
		e.checkL2Statuses(b, ingress)
		b.ReportMetric(ms(time.Since(start)), "ms/repoint")
	}
}
