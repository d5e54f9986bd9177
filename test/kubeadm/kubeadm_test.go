package kubeadm

import (
	"strings"
	"testing"
)

// TestKubeadmInitThroughVIP: raftvip's static pod, started by the kubelet
// before any API server exists, holds the VIP that kubeadm init uses as its
// control-plane endpoint; kubectl from the client reaches the cluster there.
func TestKubeadmInitThroughVIP(t *testing.T) {
	h := newHarness(t, 1)
	h.initFirst()
	out, err := h.kubectl("get", "nodes", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "node/cp1" {
		t.Fatalf("kubectl get nodes through the VIP = %q, want node/cp1", out)
	}
}

// BenchmarkKubeadmInitToVIP reports the time from kubeadm init's start to the
// API server answering through the VIP.
func BenchmarkKubeadmInitToVIP(b *testing.B) {
	for range b.N {
		h := newHarness(b, 1)
		d := h.initFirst()
		b.ReportMetric(d.Seconds(), "s-init-to-vip")
	}
}

// TestKubeadmHA: nodes 2 and 3 join the control plane through the VIP, their
// raftvip agents join with --join and are promoted: 3 voters. Then the VIP
// holder's link is cut: kubectl through the VIP works again (another voter
// takes the VIP; the API servers and etcd there keep a quorum).
func TestKubeadmHA(t *testing.T) {
	h := newHA(t)
	out, err := h.kubectl("get", "nodes", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(out); !sameSet(got, []string{"node/cp1", "node/cp2", "node/cp3"}) {
		t.Fatalf("kubectl get nodes through the VIP = %q, want cp1..cp3", out)
	}
	h.cutLeader()
	if _, err := h.kubectlRetry("get", "nodes", "-o", "name"); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkKubeadmVIPFailoverGap reports how long the API server is not
// reachable through the VIP after the VIP holder's link is cut.
func BenchmarkKubeadmVIPFailoverGap(b *testing.B) {
	for range b.N {
		h := newHA(b)
		d := h.cutLeader()
		b.ReportMetric(d.Seconds(), "s-gap")
	}
}
