package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// daemonSetArgs are the flags docs/install-kubeadm.md shows for the worker DaemonSet.
var daemonSetArgs = []string{"manifest", "daemonset", "--image=ghcr.io/raftvip/raftvip:v0.1.0",
	"--join=10.0.0.100:7950", "--interface=eth0"}

func TestManifestDaemonSetGolden(t *testing.T) {
	code, out := run(t, nil, daemonSetArgs...)
	if code != 0 {
		t.Fatalf("manifest daemonset: exit %d\n%s", code, out)
	}
	golden := filepath.Join("testdata", "daemonset.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestManifestDaemonSetGolden -update)", err)
	}
	if out != string(want) {
		t.Fatalf("manifest differs from %s (rerun with -update if intended):\n%s", golden, out)
	}

	docs := splitYAML(t, out)
	if len(docs) != 4 {
		t.Fatalf("%d documents, want ServiceAccount, ClusterRole, ClusterRoleBinding, DaemonSet", len(docs))
	}
	var sa corev1.ServiceAccount
	var role rbacv1.ClusterRole
	var binding rbacv1.ClusterRoleBinding
	var ds appsv1.DaemonSet
	for i, into := range []any{&sa, &role, &binding, &ds} {
		if err := yaml.UnmarshalStrict(docs[i], into); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, docs[i])
		}
	}
	if sa.Name != "raftvip-worker" || sa.Namespace != "kube-system" {
		t.Errorf("ServiceAccount %s/%s", sa.Namespace, sa.Name)
	}
	// The workers' identity may file and read back CSRs, nothing else: no
	// approval, no signing, no reading of Services or Secrets.
	if len(role.Rules) != 1 || !slices.Equal(role.Rules[0].Resources, []string{"certificatesigningrequests"}) ||
		!slices.Equal(role.Rules[0].Verbs, []string{"create", "get"}) {
		t.Errorf("worker ClusterRole rules %+v", role.Rules)
	}
	if s := binding.Subjects; len(s) != 1 || s[0].Kind != "ServiceAccount" || s[0].Name != sa.Name || s[0].Namespace != sa.Namespace || binding.RoleRef.Name != role.Name {
		t.Errorf("binding %+v to %+v", s, binding.RoleRef)
	}
	spec := ds.Spec.Template.Spec
	c := spec.Containers[0]
	if spec.ServiceAccountName != sa.Name || !spec.HostNetwork || spec.PriorityClassName != "system-node-critical" {
		t.Errorf("pod spec: serviceAccount %q hostNetwork %v priority %q", spec.ServiceAccountName, spec.HostNetwork, spec.PriorityClassName)
	}
	for _, must := range []string{"--tls-csr", "--tls-ca-cert=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "--join=10.0.0.100:7950", "--interface=eth0"} {
		if !slices.Contains(c.Args, must) {
			t.Errorf("args %v lack %s", c.Args, must)
		}
	}
	for _, a := range c.Args {
		if strings.Contains(a, "ca.key") || strings.HasPrefix(a, "--peer") || strings.HasPrefix(a, "--control-plane") {
			t.Errorf("worker argument %q", a)
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.ValueFrom.FieldRef.FieldPath
	}
	if env["RAFTVIP_NODE_NAME"] != "spec.nodeName" || env["RAFTVIP_ADVERTISE_ADDRESS"] != "status.hostIP" {
		t.Errorf("node name and address not from the downward API: %v", env)
	}
	aff := spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0]
	if aff.Key != "node-role.kubernetes.io/control-plane" || aff.Operator != corev1.NodeSelectorOpDoesNotExist {
		t.Errorf("workers may land on control-plane nodes: %+v", aff)
	}
	if c.StartupProbe == nil || c.StartupProbe.HTTPGet.Path != "/healthz" || c.StartupProbe.FailureThreshold*c.StartupProbe.PeriodSeconds < 300 {
		t.Errorf("startup probe %+v gives a worker waiting for its first certificate less than 5 minutes", c.StartupProbe)
	}
	if *c.SecurityContext.Privileged || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("security context %+v", c.SecurityContext)
	}
}

func TestManifestDaemonSetRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no join", []string{"manifest", "daemonset", "--interface=eth0"}, "--join"},
		{"join without port", []string{"manifest", "daemonset", "--join=10.0.0.100"}, "--join"},
		{"the CA key", []string{"manifest", "daemonset", "--join=10.0.0.100:7950", "--tls-ca-key=/etc/kubernetes/pki/ca.key"}, "tls-ca-key"},
		{"a voter set", []string{"manifest", "daemonset", "--join=10.0.0.100:7950", "--peer=cp1=10.0.0.11:7950"}, "peer"},
		{"bad status address", []string{"manifest", "daemonset", "--join=10.0.0.100:7950", "--status-address=7951"}, "--status-address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := run(t, nil, tc.args...)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want an error naming %s:\n%s", code, tc.want, out)
			}
		})
	}
}

// splitYAML returns the non-empty documents of a multi-document YAML stream.
func splitYAML(t *testing.T, s string) [][]byte {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(s)))
	var out [][]byte
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) > 0 && string(bytes.TrimSpace(doc)) != "---" {
			out = append(out, doc)
		}
	}
}
