package kubeadm

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"time"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/test/lab"
)

// resetNode retires node i as an operator retires a control-plane machine: the
// kubelet stopped, `kubeadm reset -f` (its etcd member removed; static pods,
// certificates and kubelet state deleted) and raftvip's data dir wiped. The
// kubelet stays stopped.
func (h *harness) resetNode(i int) {
	h.t.Helper()
	n := h.nodes[i]
	if err := n.StopKubelet(time.Minute); err != nil {
		h.t.Fatal(err)
	}
	out, err := h.kubeadm(i, "reset", "-f")
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Logf("kubeadm reset on %s:\n%s", n.Name, out)
	if _, err := n.Exec("rm", "-rf", "/var/lib/raftvip"); err != nil {
		h.t.Fatal(err)
	}
}

// status reads node i's /raft/status with `raftvip status -o json`.
func (h *harness) status(i int) raftstore.Status {
	h.t.Helper()
	var st raftstore.Status
	deadline := time.Now().Add(slow)
	for {
		out, err := h.nodes[i].Exec(h.raftvip, "status", "-o", "json")
		if err == nil && json.Unmarshal([]byte(out), &st) == nil {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("raftvip status on %s: %v %s", h.nodes[i].Name, err, out)
		}
		time.Sleep(time.Second)
	}
}

// refusesBootstrap starts raftvip with --bootstrap on the blank node i, given
// the cluster CA and node 0 as its --join address (a wiped node whose manifest
// was copied from the first node), and returns its output once it exits. It
// fails the test if the agent is still running after a minute: it bootstrapped.
func (h *harness) refusesBootstrap(i int) string {
	h.t.Helper()
	n := h.nodes[i]
	pki := filepath.Join(h.nodes[0].Dir, "fs/etc/upper/kubernetes/pki")
	dir := h.t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := n.Command(h.raftvip, "agent", "--bootstrap", "--join", h.nodes[0].IP+":7950",
		"--node-name", n.Name, "--advertise-address", n.IP, "--interface", lab.Iface, "--control-plane-vip", vip,
		"--tls-ca-cert", filepath.Join(pki, "ca.crt"), "--tls-ca-key", filepath.Join(pki, "ca.key"),
		"--data-dir", filepath.Join(dir, "data"), "--admin-socket", "", "--apiserver-health-url", "")
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = cmd.Process.Kill()
		case <-done:
		}
	}()
	out, err := cmd.CombinedOutput()
	close(done)
	if ctx.Err() != nil {
		h.t.Fatalf("raftvip --bootstrap on %s was still running after a minute, next to a live cluster:\n%s", n.Name, out)
	}
	if err == nil {
		h.t.Fatalf("raftvip --bootstrap on %s next to a live cluster exited 0:\n%s", n.Name, out)
	}
	return string(out)
}

// lastLine is the last non-empty line of out: the error an agent exited with.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}
