package staticpod

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func TestMountedFiles(t *testing.T) {
	got := MountedFiles("/etc/kubernetes/pki/ca.crt", "", "/etc/kubernetes/pki/../pki/ca.key", "/etc/kubernetes/pki/ca.crt")
	want := []string{"/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/ca.key"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("MountedFiles = %v, want %v", got, want)
	}
}

func TestRender(t *testing.T) {
	out, err := Render(Options{Image: "img:1", Namespace: "kube-system", AgentArgs: []string{"--node-name=cp1"},
		DataDir: "/var/lib/raftvip", StatusAddress: "127.0.0.1:9000", HostPaths: []string{"/etc/kubernetes/pki/ca.crt"}})
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(out, &pod); err != nil {
		t.Fatalf("manifest does not parse as a Pod: %v\n%s", err, out)
	}
	c := pod.Spec.Containers[0]
	if !pod.Spec.HostNetwork || pod.Spec.PriorityClassName != "system-node-critical" || pod.Name != PodName {
		t.Errorf("pod spec: hostNetwork %v priority %q name %q", pod.Spec.HostNetwork, pod.Spec.PriorityClassName, pod.Name)
	}
	if c.LivenessProbe.HTTPGet.Port.IntValue() != 9000 || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %+v does not follow --status-address", c.LivenessProbe.HTTPGet)
	}
	if *c.SecurityContext.Privileged || len(c.SecurityContext.Capabilities.Drop) != 1 {
		t.Errorf("security context %+v", c.SecurityContext)
	}
	if !reflect.DeepEqual(c.Args, []string{"agent", "--node-name=cp1"}) {
		t.Errorf("args %v", c.Args)
	}
	if m := c.VolumeMounts[1]; m.MountPath != "/etc/kubernetes/pki/ca.crt" || !m.ReadOnly {
		t.Errorf("certificate mount %+v", m)
	}
	if m := c.VolumeMounts[len(c.VolumeMounts)-1]; m.MountPath != AdminSocketDir || m.ReadOnly {
		t.Errorf("admin socket mount %+v, want %s writable", m, AdminSocketDir)
	}
	if v := pod.Spec.Volumes[len(pod.Spec.Volumes)-1]; v.HostPath == nil || v.HostPath.Path != AdminSocketDir {
		t.Errorf("admin socket volume %+v, want hostPath %s", v, AdminSocketDir)
	}
}

func TestRenderRefusesBadStatusAddress(t *testing.T) {
	_, err := Render(Options{StatusAddress: "7951"})
	if err == nil || !strings.Contains(err.Error(), "--status-address") {
		t.Fatalf("got %v, want an error naming --status-address", err)
	}
}
