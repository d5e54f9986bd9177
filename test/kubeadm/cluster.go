package kubeadm

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// K8sVersion is the Kubernetes version test/k8s/build.sh builds.
const K8sVersion = "v1.37.2"

// Components are the binaries of the node set, by name.
var Components = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubeadm", "kubelet"}

// Binaries runs `test/k8s/build.sh` (instant when cached) and returns the
// directory of the statically linked set, the same one test/cluster runs, so
// CI builds Kubernetes once.
func Binaries(repoRoot string) (string, error) {
	cmd := exec.Command("bash", filepath.Join(repoRoot, "test/k8s/build.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("test/k8s/build.sh: %w\n%s", err, stderr.String())
	}
	var dir string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RAFTVIP_K8S_BIN_DIR="); ok {
			dir = v
		}
	}
	if dir == "" {
		return "", fmt.Errorf("test/k8s/build.sh printed no RAFTVIP_K8S_BIN_DIR line:\n%s", out)
	}
	return dir, nil
}

// StaticBuild builds a Go main package with CGO_ENABLED=0, for an image.
func StaticBuild(dir, pkg, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// ImageSet lists the images every node needs: the control plane kubeadm
// deploys, the exact etcd and pause tags kubeadm 1.37 asks for, and raftvip.
func ImageSet(binDir, pause, raftvip, raftvipRef string) []Image {
	imgs := []Image{
		{Ref: "registry.k8s.io/etcd:3.7.0-0", Binary: filepath.Join(binDir, "etcd")},
		{Ref: "registry.k8s.io/pause:3.10.2", Binary: pause},
		{Ref: raftvipRef, Binary: raftvip},
	}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		imgs = append(imgs, Image{Ref: "registry.k8s.io/" + c + ":" + K8sVersion, Binary: filepath.Join(binDir, c)})
	}
	return imgs
}

// WaitContainerd waits until the node's containerd answers.
func (n *Node) WaitContainerd(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := n.Exec("ctr", "--address", "/run/containerd/containerd.sock", "version")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not answer in %s (log %s): %w", timeout, filepath.Join(n.Dir, "containerd.log"), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Import loads image-layout tars into the node's containerd, in the k8s.io
// namespace the CRI plugin uses.
func (n *Node) Import(tars ...string) error {
	for _, t := range tars {
		if _, err := n.Exec("ctr", "--address", "/run/containerd/containerd.sock", "-n", "k8s.io", "images", "import", "--no-unpack", t); err != nil {
			return err
		}
	}
	return nil
}

// KubeadmConfig is the kubeadm config of one node, the same file the docs show.
type KubeadmConfig struct {
	// Name and IP are the node's.
	Name, IP string
	// Endpoint is the control-plane VIP:6443.
	Endpoint string
	// Join makes a JoinConfiguration (control plane) instead of an
	// InitConfiguration.
	Join bool
	// Token is the bootstrap token init creates and join presents;
	// CertificateKey encrypts the uploaded control-plane certificates;
	// CACertHash pins the CA on join.
	Token, CertificateKey, CACertHash string
}

// kubeletConfig is what every kubelet on cgroup v1 needs.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
`

// nodeRegistration is shared by init and join.
const nodeRegistration = `nodeRegistration:
  name: %s
  criSocket: unix:///run/containerd/containerd.sock
  imagePullPolicy: Never
  ignorePreflightErrors: [all]
`

// YAML renders the config.
func (k KubeadmConfig) YAML() string {
	var b strings.Builder
	if !k.Join {
		fmt.Fprintf(&b, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n")
		fmt.Fprintf(&b, "bootstrapTokens:\n- token: %s\n", k.Token)
		fmt.Fprintf(&b, "certificateKey: %s\n", k.CertificateKey)
		fmt.Fprintf(&b, "localAPIEndpoint:\n  advertiseAddress: %s\n  bindPort: 6443\n", k.IP)
		fmt.Fprintf(&b, nodeRegistration, k.Name)
		b.WriteString("skipPhases: [addon/kube-proxy, addon/coredns]\n---\n")
		fmt.Fprintf(&b, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: %s\ncontrolPlaneEndpoint: %s\n---\n", K8sVersion, k.Endpoint)
		b.WriteString(kubeletConfig)
		return b.String()
	}
	fmt.Fprintf(&b, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n")
	fmt.Fprintf(&b, nodeRegistration, k.Name)
	fmt.Fprintf(&b, "discovery:\n  bootstrapToken:\n    apiServerEndpoint: %s\n    token: %s\n    caCertHashes: [%s]\n", k.Endpoint, k.Token, k.CACertHash)
	fmt.Fprintf(&b, "controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: %s\n    bindPort: 6443\n  certificateKey: %s\n", k.IP, k.CertificateKey)
	return b.String()
}
