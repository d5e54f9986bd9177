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
// voters). A follower is reset with kubeadm and its data dir wiped: raftvip
// --bootstrap there refuses, naming the live cluster; joined again under its
// old name it comes back a voter of the same cluster. The VIP holder's link is
// cut: kubectl through the VIP works again. With the link back, a follower is
// retired (kubeadm reset, raftvip members remove): two voters, and the VIP
// still answers.
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

	f := h.follower()
	h.resetNode(f)
	out = h.refusesBootstrap(f)
	if !strings.Contains(out, "refusing to bootstrap") || !strings.Contains(out, "start this node with --join") {
		t.Errorf("raftvip --bootstrap on the wiped %s next to the live cluster should refuse, naming it; said:\n%s", h.nodes[f].Name, out)
	} else {
		t.Logf("raftvip --bootstrap on the wiped %s: %s", h.nodes[f].Name, lastLine(out))
	}
	start := time.Now()
	h.rejoin(f)
	h.waitVoters(0, "cp1", "cp2", "cp3")
	t.Logf("%s reset, wiped and joined again: a voter %s after kubeadm join started", h.nodes[f].Name, time.Since(start).Round(time.Second))
	for i := range h.nodes {
		if got := h.status(i).ClusterID; got != cluster {
			t.Errorf("%s is in cluster %q after %s rejoined, want %q: two clusters", h.nodes[i].Name, got, h.nodes[f].Name, cluster)
		}
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
	keep := h.follower(gone)
	if out, err := h.nodes[keep].Exec(h.raftvip, "members", "remove", h.nodes[gone].Name); err != nil {
		t.Fatalf("members remove %s: %v %s", h.nodes[gone].Name, err, out)
	}
	var rest []string
	for i, n := range h.nodes {
		if i != gone {
			rest = append(rest, n.Name)
			if got := h.status(i).ClusterID; got != cluster {
				t.Errorf("%s is in cluster %q after %s was retired, want %q", n.Name, got, h.nodes[gone].Name, cluster)
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
