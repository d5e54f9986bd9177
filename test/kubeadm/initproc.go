package kubeadm

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// InitEnv names the environment variable that turns the test binary into a
// node's PID 1: its value is the node's InitConfig as JSON.
const InitEnv = "RAFTVIP_KUBEADM_NODE_INIT"

// InitConfig is what a node's PID 1 needs to set the node up.
type InitConfig struct {
	// Name is the node's hostname and Kubernetes node name.
	Name string
	// Dir is the host directory holding the node's overlay layers and logs.
	Dir string
	// NodeIP is the node's address, given to the kubelet.
	NodeIP string
	// CgroupRoot is the kubelet's --cgroup-root, created by the harness.
	CgroupRoot string
	// Kubelet and Containerd are the binaries to run.
	Kubelet, Containerd string
}

// RunInit is a node's PID 1: it gives the node its own /run, /etc, /var/lib
// and /var/log, starts containerd, supervises the kubelet once kubeadm has
// written its config, and reaps every orphan. It returns only on failure; the
// node ends when the harness kills it.
func RunInit(raw string) error {
	var c InitConfig
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return fmt.Errorf("node init: config %s: %w", InitEnv, err)
	}
	if err := syscall.Sethostname([]byte(c.Name)); err != nil {
		return fmt.Errorf("node init: hostname: %w", err)
	}
	if err := mountNode(c); err != nil {
		return err
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGCHLD)
	if _, err := spawn(filepath.Join(c.Dir, "containerd.log"), c.Containerd, "--config", filepath.Join(c.Dir, "containerd.toml")); err != nil {
		return err
	}
	kubelet := 0
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-sigs:
		case <-tick.C:
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
			if pid == kubelet {
				kubelet = 0
			}
		}
		if kubelet == 0 {
			if args, ok := kubeletArgs(c); ok {
				var err error
				if kubelet, err = spawn(filepath.Join(c.Dir, "kubelet.log"), c.Kubelet, args...); err != nil {
					return err
				}
			}
		}
	}
}

// mountNode gives the node its private directories. The mount namespace is
// private (unshare's default), so nothing here reaches the host.
func mountNode(c InitConfig) error {
	type m struct{ src, target, fstype, data string }
	var ms []m
	ms = append(ms, m{"tmpfs", "/run", "tmpfs", "mode=755"})
	for _, d := range []string{"/etc", "/var/lib", "/var/log"} {
		base := filepath.Join(c.Dir, "fs", strings.TrimPrefix(d, "/"))
		upper, work := filepath.Join(base, "upper"), filepath.Join(base, "work")
		for _, p := range []string{upper, work} {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return fmt.Errorf("node init: %w", err)
			}
		}
		ms = append(ms, m{"overlay", d, "overlay", "lowerdir=" + d + ",upperdir=" + upper + ",workdir=" + work})
	}
	ms = append(ms, m{"tmpfs", "/var/lib/etcd", "tmpfs", "mode=700"})
	for _, x := range ms {
		if err := os.MkdirAll(x.target, 0o755); err != nil {
			return fmt.Errorf("node init: %w", err)
		}
		if err := syscall.Mount(x.src, x.target, x.fstype, 0, x.data); err != nil {
			return fmt.Errorf("node init: mount %s on %s: %w", x.fstype, x.target, err)
		}
	}
	return nil
}

// HoldFile is the file in a node's Dir that keeps its PID 1 from starting the
// kubelet: `systemctl stop kubelet` before `kubeadm reset`, on a node without
// systemd.
const HoldFile = "kubelet.hold"

// kubeletArgs returns the kubelet's command line once kubeadm has written its
// config (kubeadm would start the kubelet through systemd, absent here), unless
// the harness holds the kubelet stopped.
func kubeletArgs(c InitConfig) ([]string, bool) {
	if _, err := os.Stat(filepath.Join(c.Dir, HoldFile)); err == nil {
		return nil, false
	}
	if _, err := os.Stat("/var/lib/kubelet/config.yaml"); err != nil {
		return nil, false
	}
	args := []string{
		"--config=/var/lib/kubelet/config.yaml",
		"--kubeconfig=/etc/kubernetes/kubelet.conf",
		"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
		"--cgroup-root=" + c.CgroupRoot,
		"--node-ip=" + c.NodeIP,
		"--hostname-override=" + c.Name,
	}
	env, err := os.ReadFile("/var/lib/kubelet/kubeadm-flags.env")
	if err == nil {
		return append(args, parseFlagsEnv(string(env))...), true
	}
	return args, true
}

// parseFlagsEnv reads kubeadm's KUBELET_KUBEADM_ARGS="--a=b --c=d" file.
func parseFlagsEnv(s string) []string {
	for _, line := range strings.Split(s, "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "KUBELET_KUBEADM_ARGS=")
		if ok {
			return strings.Fields(strings.Trim(v, `"`))
		}
	}
	return nil
}

// spawn starts a child without Go's waiting on it: PID 1 reaps everything.
func spawn(logPath, bin string, args ...string) (int, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("node init: %w", err)
	}
	defer f.Close()
	p, err := os.StartProcess(bin, append([]string{bin}, args...), &os.ProcAttr{
		Env:   []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Files: []*os.File{nil, f, f},
	})
	if err != nil {
		return 0, fmt.Errorf("node init: start %s: %w", bin, err)
	}
	return p.Pid, nil
}
