// Package staticpod renders the static pod manifest that `raftvip manifest pod`
// prints for /etc/kubernetes/manifests, so installing raftvip is one file per node.
package staticpod

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// PodName is the static pod's name; the kubelet names its mirror pod
// "<PodName>-<node-name>", which is what the agent's --pod-name defaults to.
const PodName = "raftvip"

// Options are the parts of the agent configuration the manifest needs beyond the
// agent's own arguments (which it passes through unchanged).
type Options struct {
	Image         string
	Namespace     string
	AgentArgs     []string // flags for `raftvip agent`, as given to `manifest pod`
	DataDir       string
	StatusAddress string
	HostPaths     []string // files the agent reads (certificates, kubeconfig): mounted read-only
	// HostDirs are directories mounted read-only because the agent re-reads files
	// in them (--tls-cert/--tls-key): a file replaced by renaming a new one over it
	// is seen through a directory mount, never through a mount of the old file.
	HostDirs []string
}

// Render returns the manifest as YAML.
func Render(o Options) ([]byte, error) {
	host, portStr, err := net.SplitHostPort(o.StatusAddress)
	if err != nil {
		return nil, fmt.Errorf("--status-address %q: %w", o.StatusAddress, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("--status-address %q: port: %w", o.StatusAddress, err)
	}
	dirOrCreate := corev1.HostPathDirectoryOrCreate
	file := corev1.HostPathFile
	dir := corev1.HostPathDirectory
	c := agentContainer(o.Image, append([]string{"agent"}, o.AgentArgs...), probeHost(host), port, o.DataDir)
	c.Env = []corev1.EnvVar{
		{Name: "RAFTVIP_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "RAFTVIP_POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
	}
	pod := corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      PodName,
			Namespace: o.Namespace,
			Labels:    map[string]string{"app.kubernetes.io/name": "raftvip", "app.kubernetes.io/component": "vip"},
		},
		Spec: corev1.PodSpec{
			HostNetwork:       true,
			PriorityClassName: "system-node-critical",
			Containers:        []corev1.Container{c},
			Volumes: []corev1.Volume{{
				Name:         "data",
				VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: o.DataDir, Type: &dirOrCreate}},
			}},
		},
	}
	mount := func(name, p string, typ *corev1.HostPathType) {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{
			Name:         name,
			VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: p, Type: typ}},
		})
		pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts,
			corev1.VolumeMount{Name: name, MountPath: p, ReadOnly: true})
	}
	dirs := map[string]bool{}
	for i, d := range o.HostDirs {
		dirs[d] = true
		mount(fmt.Sprintf("dir-%d", i), d, &dir)
	}
	for i, p := range o.HostPaths {
		if !dirs[filepath.Dir(p)] {
			mount(fmt.Sprintf("file-%d", i), p, &file)
		}
	}
	// The admin socket's directory comes from the host, writable, so `raftvip
	// members` and `raftvip snapshot save` run on the node reach the agent (the
	// container's root filesystem is read-only).
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{
		Name:         "run",
		VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: AdminSocketDir, Type: &dirOrCreate}},
	})
	pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts,
		corev1.VolumeMount{Name: "run", MountPath: AdminSocketDir})
	if len(o.HostPaths) > 0 || len(o.HostDirs) > 0 {
		// kubeadm's PKI files are root-owned 0600: the agent reads them as root.
		root := int64(0)
		pod.Spec.Containers[0].SecurityContext.RunAsUser = &root
	}
	out, err := yaml.Marshal(&pod)
	if err != nil {
		return nil, fmt.Errorf("render manifest: %w", err)
	}
	return out, nil
}

// agentContainer is the agent's container in both the static pod and the worker
// DaemonSet: not privileged, only the capabilities it uses, a read-only root,
// and a liveness probe at the status server's own address.
func agentContainer(image string, args []string, probeHost string, port int, dataDir string) corev1.Container {
	no := false
	yes := true
	return corev1.Container{
		Name:            "raftvip",
		Image:           image,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Args:            args,
		SecurityContext: &corev1.SecurityContext{
			Privileged:               &no,
			AllowPrivilegeEscalation: &no,
			ReadOnlyRootFilesystem:   &yes,
			Capabilities: &corev1.Capabilities{
				Drop: []corev1.Capability{"ALL"},
				// SYS_NICE lets the agent raise its priority (--nice) so heartbeats
				// stay on time when the node's CPUs are saturated.
				Add: []corev1.Capability{"NET_ADMIN", "NET_RAW", "SYS_NICE"},
			},
		},
		LivenessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Host: probeHost, Path: "/healthz", Port: intstr.FromInt32(int32(port)),
			}},
			InitialDelaySeconds: 5, PeriodSeconds: 10, TimeoutSeconds: 3, FailureThreshold: 3,
		},
		VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: dataDir}},
	}
}

// MountedFiles picks the files among the agent's flags that the pod must mount from
// the host, in a stable order, without duplicates.
func MountedFiles(paths ...string) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range paths {
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, filepath.Clean(p))
	}
	return out
}

// MountedDirs is the directories of paths, in a stable order, without duplicates.
func MountedDirs(paths ...string) []string {
	var dirs []string
	for _, p := range paths {
		if p != "" {
			dirs = append(dirs, filepath.Dir(filepath.Clean(p)))
		}
	}
	return MountedFiles(dirs...)
}

// probeHost is where the kubelet sends the liveness probe: the status server's
// own address when it is bound to one, loopback when it listens on every address.
// The probe never depends on the status server being exposed.
func probeHost(host string) string {
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "127.0.0.1"
	}
	return host
}
