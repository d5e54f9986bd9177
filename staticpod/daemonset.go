package staticpod

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/raftvip/raftvip/workercert"
)

// WorkerName names the worker DaemonSet, its ServiceAccount (which the leader's
// approval checks for) and its RBAC objects.
const WorkerName = workercert.ServiceAccountName

// ServiceAccountCA is where every pod finds the cluster CA certificate, which
// is the CA raftvip peer certificates chain to on a kubeadm cluster.
const ServiceAccountCA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

// startupProbeFailures × 10 s is how long a worker may wait for its first
// certificate before the kubelet restarts it.
const startupProbeFailures = 60

// AdminSocketDir holds the agent's default admin socket (--admin-socket).
const AdminSocketDir = "/run/raftvip"

// DaemonSetOptions are what the worker DaemonSet needs; node name and
// advertise address come from the downward API on each node.
type DaemonSetOptions struct {
	Image         string
	Namespace     string
	AgentArgs     []string // flags for `raftvip agent` besides the ones the DaemonSet sets
	DataDir       string
	StatusAddress string
}

// RenderDaemonSet returns the worker installation as multi-document YAML: the
// ServiceAccount, the ClusterRole that lets it file CSRs (create and read back,
// nothing else), its binding, and the DaemonSet. The agent runs with --tls-csr,
// so workers never hold the CA key; the DaemonSet keeps off control-plane nodes,
// whose static pods are voters.
func RenderDaemonSet(o DaemonSetOptions) ([]byte, error) {
	host, portStr, err := net.SplitHostPort(o.StatusAddress)
	if err != nil {
		return nil, fmt.Errorf("--status-address %q: %w", o.StatusAddress, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("--status-address %q: port: %w", o.StatusAddress, err)
	}
	labels := map[string]string{"app.kubernetes.io/name": "raftvip", "app.kubernetes.io/component": "worker"}
	meta := metav1.ObjectMeta{Name: WorkerName, Namespace: o.Namespace, Labels: labels}
	sa := corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: meta}
	role := rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: WorkerName, Labels: labels},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests"}, Verbs: []string{"create", "get"},
		}},
	}
	binding := rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: WorkerName, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: WorkerName},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: WorkerName, Namespace: o.Namespace}},
	}
	fromField := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	args := append([]string{"agent", "--tls-csr", "--tls-ca-cert=" + ServiceAccountCA,
		"--data-dir=" + o.DataDir, "--status-address=" + o.StatusAddress}, o.AgentArgs...)
	c := agentContainer(o.Image, args, probeHost(host), port, o.DataDir)
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "run", MountPath: AdminSocketDir})
	// The status server answers only once the worker has its first certificate,
	// which waits for the API server, a leader and the worker's Node: up to ten
	// minutes before the kubelet restarts the pod, instead of the liveness probe's
	// half minute.
	c.StartupProbe = &corev1.Probe{
		ProbeHandler:  c.LivenessProbe.ProbeHandler,
		PeriodSeconds: 10, TimeoutSeconds: 3, FailureThreshold: startupProbeFailures,
	}
	c.Env = []corev1.EnvVar{
		fromField("RAFTVIP_NODE_NAME", "spec.nodeName"),
		fromField("RAFTVIP_ADVERTISE_ADDRESS", "status.hostIP"),
		fromField("RAFTVIP_NAMESPACE", "metadata.namespace"),
		fromField("RAFTVIP_POD_NAME", "metadata.name"),
	}
	dirOrCreate := corev1.HostPathDirectoryOrCreate
	ds := appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: meta,
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr(intstr.FromInt32(1))}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: WorkerName,
					HostNetwork:        true,
					DNSPolicy:          corev1.DNSClusterFirstWithHostNet,
					PriorityClassName:  "system-node-critical",
					Containers:         []corev1.Container{c},
					Tolerations:        []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
						RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
							MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.NodeSelectorOpDoesNotExist}},
						}}},
					}},
					Volumes: []corev1.Volume{{
						Name:         "data",
						VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: o.DataDir, Type: &dirOrCreate}},
					}, {
						// The admin socket's directory: the root filesystem is read-only.
						Name:         "run",
						VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}},
					}},
				},
			},
		},
	}
	var docs []string
	for _, obj := range []any{&sa, &role, &binding, &ds} {
		b, err := renderObject(obj)
		if err != nil {
			return nil, fmt.Errorf("render worker manifest: %w", err)
		}
		docs = append(docs, string(b))
	}
	return []byte("---\n" + strings.Join(docs, "---\n")), nil
}

// renderObject is the YAML of obj without its empty status and creation
// timestamp, which are the API server's to fill.
func renderObject(obj any) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	if spec, ok := m["spec"].(map[string]any); ok {
		if tmpl, ok := spec["template"].(map[string]any); ok {
			if md, ok := tmpl["metadata"].(map[string]any); ok {
				delete(md, "creationTimestamp")
			}
		}
	}
	return yaml.Marshal(m)
}

func ptr[T any](v T) *T { return &v }
