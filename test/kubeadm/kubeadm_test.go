package kubeadm

import (
	"strings"
	"testing"
	"time"
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

// TestKubeadmHA is a control plane's life under kubeadm: nodes 2 and 3 join
// through the VIP, their raftvip agents join with --join and are promoted (3
// voters). The VIP holder's link is cut: kubectl through the VIP works again.
// With the link back, a follower is retired: kubeadm reset and its data dir
// wiped; raftvip --bootstrap there refuses, naming the live cluster; raftvip
// members remove leaves two voters of the same cluster, and the VIP still
// answers.
func TestKubeadmHA(t *testing.T) {
	h := newHA(t)
	out, err := h.kubectl("get", "nodes", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(out); !sameSet(got, []string{"node/cp1", "node/cp2", "node/cp3"}) {
		t.Fatalf("kubectl get nodes through the VIP = %q, want cp1..cp3", out)
	}
	cluster := h.status(0).ClusterID
	if cluster == "" {
		t.Fatal("cp1 reports no cluster ID")
	}

	l, gap := h.cutLeader()
	t.Logf("cut %s's link: the API server answered through the VIP again after %s", h.nodes[l].Name, gap.Round(time.Millisecond))
	if _, err := h.kubectlRetry("get", "nodes", "-o", "name"); err != nil {
		t.Fatal(err)
	}
	h.lab.RestoreLink(l)
	h.waitVoters(0, "cp1", "cp2", "cp3")

	gone := h.follower()
	h.resetNode(gone)
	out = h.refusesBootstrap(gone)
	if !strings.Contains(out, "refusing to bootstrap") || !strings.Contains(out, "start this node with --join") {
		t.Errorf("raftvip --bootstrap on the wiped %s next to the live cluster should refuse, naming it; said:\n%s", h.nodes[gone].Name, out)
	} else {
		t.Logf("raftvip --bootstrap on the wiped %s: %s", h.nodes[gone].Name, lastLine(out))
	}
	keep := h.follower(gone)
	if out, err := h.nodes[keep].Exec(h.raftvip, "members", "remove", h.nodes[gone].Name); err != nil {
		t.Fatalf("members remove %s: %v %s", h.nodes[gone].Name, err, out)
	}
	var rest []string
	for i, n := range h.nodes {
		if i != gone {
			rest = append(rest, n.Name)
			if got := h.status(i).ClusterID; got != cluster {
				t.Errorf("%s is in cluster %q, want %q", n.Name, got, cluster)
			}
		}
	}
	h.waitVoters(keep, rest...)
	t.Logf("%s reset and removed: voters %v", h.nodes[gone].Name, rest)
	if _, err := h.kubectlRetry("get", "nodes", "-o", "name"); err != nil {
		t.Fatalf("kubectl through the VIP after %s was removed: %v", h.nodes[gone].Name, err)
	}
}

// BenchmarkKubeadmVIPFailoverGap reports how long the API server is not
// reachable through the VIP after the VIP holder's link is cut.
func BenchmarkKubeadmVIPFailoverGap(b *testing.B) {
	for range b.N {
		h := newHA(b)
		_, d := h.cutLeader()
		b.ReportMetric(d.Seconds(), "s-gap")
	}
}
