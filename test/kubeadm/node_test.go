package kubeadm

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/lab"
)

// TestNodeRunsOwnContainerd: a node has its own hostname, /run and /etc, its
// containerd imports a locally built image, and stopping the node leaves no
// process or cgroup behind.
func TestNodeRunsOwnContainerd(t *testing.T) {
	l := lab.New(t, 1, lab.WithoutIPv6())
	build := t.TempDir()
	pause := filepath.Join(build, "pause")
	if err := StaticBuild("../..", "./test/kubeadm/pause", pause); err != nil {
		t.Fatal(err)
	}
	tar := filepath.Join(build, "pause.tar")
	if err := WriteImageTar(tar, Image{Ref: "registry.k8s.io/pause:3.10.2", Binary: pause}); err != nil {
		t.Fatal(err)
	}
	n, err := StartNode("cp1", l.Node(0), l.NodeIP(0).String(), filepath.Join(l.Dir(), "node1"), "/bin/false")
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = n.Stop()
		}
	})
	if err := n.WaitContainerd(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := n.Import(tar); err != nil {
		t.Fatal(err)
	}
	out, err := n.Exec("ctr", "--address", "/run/containerd/containerd.sock", "-n", "k8s.io", "images", "ls", "-q")
	if err != nil || !strings.Contains(out, "registry.k8s.io/pause:3.10.2") {
		t.Fatalf("image list = %q, %v; want registry.k8s.io/pause:3.10.2", out, err)
	}
	if out, err := n.Exec("hostname"); err != nil || strings.TrimSpace(out) != "cp1" {
		t.Fatalf("hostname = %q, %v; want cp1", out, err)
	}
	if _, err := n.Exec("touch", "/etc/raftvip-node-only"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/etc/raftvip-node-only"); err == nil {
		t.Fatal("a file written to the node's /etc appeared on the host")
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", n.cgroup)); !os.IsNotExist(err) {
		t.Fatalf("cgroup %s still there after Stop: %v", n.cgroup, err)
	}
	if err := processExists(n.init); err == nil {
		t.Fatalf("node PID 1 (%d) still runs after Stop", n.init)
	}
}

// processExists checks whether pid exists, zombies included (signal 0).
func processExists(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Signal(syscall.Signal(0))
}
