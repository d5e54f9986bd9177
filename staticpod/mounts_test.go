package staticpod

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func render(t *testing.T, o Options) corev1.Pod {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = "/var/lib/raftvip"
	}
	out, err := Render(o)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(out, &pod); err != nil {
		t.Fatalf("manifest does not parse as a Pod: %v\n%s", err, out)
	}
	return pod
}

func TestLivenessProbeFollowsStatusAddress(t *testing.T) {
	for _, tc := range []struct{ addr, host string }{
		{"127.0.0.1:7951", "127.0.0.1"},
		{"[::1]:7951", "::1"},
		{"10.0.0.11:7951", "10.0.0.11"},
		{":7951", "127.0.0.1"},
		{"0.0.0.0:7951", "127.0.0.1"},
		{"[::]:7951", "127.0.0.1"},
		{"localhost:7951", "localhost"},
	} {
		pod := render(t, Options{StatusAddress: tc.addr})
		if got := pod.Spec.Containers[0].LivenessProbe.HTTPGet.Host; got != tc.host {
			t.Errorf("--status-address %s: probe host %q, want %q", tc.addr, got, tc.host)
		}
	}
}

func TestRenderMountsReloadedFilesByDirectory(t *testing.T) {
	pod := render(t, Options{StatusAddress: "127.0.0.1:7951",
		HostPaths: []string{"/etc/kubernetes/pki/ca.crt", "/etc/raftvip/tls/other.pem", "/etc/raftvip/bgp-password"},
		HostDirs:  []string{"/etc/raftvip/tls"}})
	type mount struct {
		path string
		typ  corev1.HostPathType
	}
	var got []mount
	for _, v := range pod.Spec.Volumes[1:] {
		got = append(got, mount{v.HostPath.Path, *v.HostPath.Type})
	}
	want := []mount{
		{"/etc/raftvip/tls", corev1.HostPathDirectory},
		{"/etc/kubernetes/pki/ca.crt", corev1.HostPathFile},
		// A file inside a mounted directory is not mounted again.
		{"/etc/raftvip/bgp-password", corev1.HostPathFile},
		// The admin socket's directory, last and writable.
		{AdminSocketDir, corev1.HostPathDirectoryOrCreate},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("volumes %v, want %v", got, want)
	}
	c := pod.Spec.Containers[0]
	for _, m := range c.VolumeMounts[1 : len(c.VolumeMounts)-1] {
		if !m.ReadOnly {
			t.Errorf("mount %s is writable", m.MountPath)
		}
	}
	if c.SecurityContext.RunAsUser == nil || *c.SecurityContext.RunAsUser != 0 {
		t.Error("mounted root-owned files need the agent to run as root")
	}
}

func TestMountedDirs(t *testing.T) {
	got := MountedDirs("/etc/raftvip/tls/tls.crt", "", "/etc/raftvip/tls/../tls/tls.key", "/srv/key.pem")
	want := []string{"/etc/raftvip/tls", "/srv"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("MountedDirs = %v, want %v", got, want)
	}
}
