package kubeadm

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// containerdConfig is every node's containerd: its own /run (containerd 1.6
// hard-codes /run/containerd/s for shims), its store on the host's disk (an
// overlay cannot hold overlayfs snapshots), cgroupfs, no OOM score changes
// (CAP_SYS_RESOURCE is not in the bounding set) and the locally built pause.
const containerdConfig = `version = 2
root = "%s"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10.2"
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
`

// Node is one running node: PID 1 of its own PID namespace, inside a lab
// network namespace.
type Node struct {
	// Name is the hostname and Kubernetes node name.
	Name string
	// NetNS is the lab network namespace the node lives in.
	NetNS string
	// IP is the node's address.
	IP string
	// Dir holds the node's overlay layers and logs on the host.
	Dir string

	cgroup  string
	unshare *exec.Cmd
	init    int
}

// cgroupControllers are the v1 hierarchies the kubelet uses under its root.
var cgroupControllers = []string{"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "systemd"}

// cgroupCleanup adds the hybrid unified hierarchy, where runc may also
// create a node's cgroups.
var cgroupCleanup = append([]string{"unified"}, cgroupControllers...)

// StartNode boots a node: cgroup root in every hierarchy, then the test
// binary re-executed as PID 1 of new mount, UTS and PID namespaces entered
// into netns (nsenter --net, not `ip netns exec`, which hides /sys/fs/cgroup).
func StartNode(name, netns, ip, dir, kubelet string) (*Node, error) {
	n := &Node{Name: name, NetNS: netns, IP: ip, Dir: dir, cgroup: "/" + netns}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	if err := n.makeCgroups(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "containerd.toml"), []byte(fmt.Sprintf(containerdConfig, filepath.Join(dir, "containerd"))), 0o644); err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	ctrd, err := exec.LookPath("containerd")
	if err != nil {
		return nil, fmt.Errorf("node %s: containerd not installed (make deps): %w", name, err)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(InitConfig{Name: name, Dir: dir, NodeIP: ip, CgroupRoot: n.cgroup, Kubelet: kubelet, Containerd: ctrd})
	if err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "init.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd := exec.Command("nsenter", "--net=/run/netns/"+netns, "--",
		"unshare", "-m", "-u", "-p", "-f", "--mount-proc", "--", self)
	cmd.Env = append(os.Environ(), InitEnv+"="+string(cfg))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("node %s: start: %w", name, err)
	}
	n.unshare = cmd
	if n.init, err = childOf(cmd.Process.Pid, 10*time.Second); err != nil {
		n.Stop()
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	return n, nil
}

// childOf waits for the one child of pid (nsenter execs unshare, which forks
// the node's PID 1) and returns its host PID.
func childOf(pid int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if f := strings.Fields(string(b)); len(f) > 0 {
			return strconv.Atoi(f[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("no PID 1 under unshare %d after %s", pid, timeout)
}

// Command returns a command that runs inside the node's namespaces.
func (n *Node) Command(args ...string) *exec.Cmd {
	full := append([]string{"-t", strconv.Itoa(n.init), "-m", "-u", "-p", "-n", "--"}, args...)
	return exec.Command("nsenter", full...)
}

// Exec runs args inside the node and returns the combined output; the error
// names the command and carries its output.
func (n *Node) Exec(args ...string) (string, error) {
	out, err := n.Command(args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("node %s: %s: %w\n%s", n.Name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Stop kills the node's PID 1, which ends every process of the node
// (containerd, shims, kubelet, containers), then removes its cgroups.
func (n *Node) Stop() error {
	if n.init > 0 {
		_ = syscall.Kill(n.init, syscall.SIGKILL)
	}
	if n.unshare != nil {
		// unshare -f reaps PID 1 and exits; killing unshare first would leave
		// PID 1 a zombie (the host's PID 1 does not reap here).
		waited := make(chan struct{})
		go func() { _ = n.unshare.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(30 * time.Second):
			_ = n.unshare.Process.Kill()
			<-waited
		}
	}
	var errs []error
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range cgroupCleanup {
		if err := removeCgroupTree(filepath.Join("/sys/fs/cgroup", c, n.cgroup), deadline); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (n *Node) makeCgroups() error {
	for _, c := range cgroupControllers {
		d := filepath.Join("/sys/fs/cgroup", c, n.cgroup)
		// Mkdir, not MkdirAll: a missing hierarchy is an error, not a
		// directory to create on the host's cgroup tmpfs.
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("node %s: cgroup: %w", n.Name, err)
		}
		if c != "cpuset" {
			continue
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpuset", f))
			if err != nil {
				return fmt.Errorf("node %s: cgroup: %w", n.Name, err)
			}
			if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
				return fmt.Errorf("node %s: cgroup %s: %w", n.Name, f, err)
			}
		}
	}
	return nil
}

// removeCgroupTree removes a cgroup and its children, deepest first, retrying
// until the killed processes have left them.
func removeCgroupTree(root string, deadline time.Time) error {
	for {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		var last error
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
				last = fmt.Errorf("remove cgroup %s: %w", dirs[i], err)
			}
		}
		if last == nil || time.Now().After(deadline) {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ContainerLogs returns the host paths of every log file the node's kubelet
// wrote for containers named container (/var/log/pods/<pod>/<container>/N.log,
// one per restart), oldest restart first, so a failing test can show why a
// static pod crash-looped after the node is gone.
func (n *Node) ContainerLogs(container string) []string {
	files, _ := filepath.Glob(filepath.Join(n.Dir, "fs/var/log/upper/pods/*", container, "*.log"))
	sort.Slice(files, func(i, j int) bool {
		return restartOf(files[i]) < restartOf(files[j])
	})
	return files
}

// restartOf is the restart count a kubelet log file is named after.
func restartOf(path string) int {
	i, _ := strconv.Atoi(strings.TrimSuffix(filepath.Base(path), ".log"))
	return i
}

// StopKubelet stops the node's kubelet and keeps it stopped, as `systemctl
// stop kubelet` would: kubeadm reset expects a stopped kubelet, or the kubelet
// restarts the static pods reset removes.
func (n *Node) StopKubelet(timeout time.Duration) error {
	if err := os.WriteFile(filepath.Join(n.Dir, HoldFile), nil, 0o644); err != nil {
		return fmt.Errorf("node %s: hold the kubelet: %w", n.Name, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		// pkill exits 1 when nothing matched: the kubelet is gone.
		if _, err := n.Exec("pkill", "-x", "kubelet"); err != nil {
			if _, err := n.Exec("pgrep", "-x", "kubelet"); err != nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s: the kubelet still runs after %s", n.Name, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
