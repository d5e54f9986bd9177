package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// oneLine checks that out is a single line naming every want.
func oneLine(t *testing.T, code int, out string, want ...string) {
	t.Helper()
	if code != 2 {
		t.Fatalf("exit code %d, want 2; output:\n%s", code, out)
	}
	line := strings.TrimSpace(out)
	if strings.Contains(line, "\n") {
		t.Fatalf("want one line, got:\n%s", out)
	}
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Errorf("message %q does not name %q", line, w)
		}
	}
}

func TestAgentRefusesUnbindableStatusAddress(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := writeCA(t, dir)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	code, out := run(t, nil, "agent", "--node-name=n1", "--advertise-address=127.0.0.1", "--raft-port=17950",
		"--peer=n1=127.0.0.1:17950", "--data-dir="+filepath.Join(dir, "data"), "--nice=0", "--apiserver-health-url=",
		"--tls-ca-cert="+caCert, "--tls-ca-key="+caKey, "--status-address="+addr)
	oneLine(t, code, out, "--status-address", addr)
	// Refused before Raft started: no raft state was written.
	if _, err := os.Stat(filepath.Join(dir, "data", "raft.db")); !os.IsNotExist(err) {
		t.Errorf("raft started before the status address was refused: %v", err)
	}
}

func TestAgentRefusesBadHardeningFlags(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := writeCA(t, dir)
	missing := filepath.Join(dir, "no-such-password")
	base := []string{"agent", "--node-name=n1", "--advertise-address=127.0.0.1", "--raft-port=17950",
		"--status-address=127.0.0.1:0", "--peer=n1=127.0.0.1:17950", "--data-dir=" + filepath.Join(dir, "data")}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"unreadable BGP password file", []string{"--insecure-transport", "--mode=bgp", "--bgp-as=64512", "--bgp-peer=198.51.100.1,64500", "--bgp-password-file=" + missing},
			[]string{"--bgp-password-file", missing}},
		{"BGP password file in l2 mode", []string{"--insecure-transport", "--bgp-password-file=" + missing}, []string{"--bgp-password-file", "--mode bgp"}},
		{"peer certificate lifetime too short", []string{"--tls-ca-cert=" + caCert, "--tls-ca-key=" + caKey, "--peer-cert-lifetime=1s"},
			[]string{"--peer-cert-lifetime", "1s"}},
		{"unreadable --tls-cert", []string{"--tls-ca-cert=" + caCert, "--tls-cert=" + missing, "--tls-key=" + caKey}, []string{"--tls-cert", missing}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := run(t, nil, append(base, tc.args...)...)
			oneLine(t, code, out, tc.want...)
		})
	}
}

// manifestPod renders `manifest pod` with args and parses it.
func manifestPod(t *testing.T, args ...string) (corev1.Pod, string) {
	t.Helper()
	code, out := run(t, nil, append([]string{"manifest", "pod", "--node-name=cp1", "--advertise-address=10.0.0.11",
		"--peer=cp1=10.0.0.11:7950"}, args...)...)
	if code != 0 {
		t.Fatalf("manifest pod: exit %d\n%s", code, out)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict([]byte(out), &pod); err != nil {
		t.Fatalf("manifest does not parse: %v\n%s", err, out)
	}
	return pod, out
}

func hostPaths(pod corev1.Pod) map[string]corev1.HostPathType {
	out := map[string]corev1.HostPathType{}
	for _, v := range pod.Spec.Volumes {
		if v.HostPath != nil && v.HostPath.Type != nil {
			out[v.HostPath.Path] = *v.HostPath.Type
		}
	}
	return out
}

func TestManifestPodMountsBGPPasswordFile(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "bgp-password")
	if err := os.WriteFile(pw, []byte("Zq9secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pod, out := manifestPod(t, "--insecure-transport", "--mode=bgp", "--bgp-as=64512", "--bgp-peer=198.51.100.1,64500",
		"--bgp-password-file="+pw)
	if hostPaths(pod)[pw] != corev1.HostPathFile {
		t.Errorf("password file %s not mounted: %v", pw, hostPaths(pod))
	}
	if !strings.Contains(out, "--bgp-password-file="+pw) {
		t.Error("the agent is not told where the password file is")
	}
	if strings.Contains(out, "Zq9secret") || strings.Contains(out, "password=") {
		t.Errorf("the manifest shows the password:\n%s", out)
	}
}

func TestManifestPodRefusesInlineBGPPassword(t *testing.T) {
	code, out := run(t, nil, "manifest", "pod", "--node-name=cp1", "--advertise-address=10.0.0.11", "--peer=cp1=10.0.0.11:7950",
		"--insecure-transport", "--mode=bgp", "--bgp-as=64512", "--bgp-peer=198.51.100.1,64500,password=Zq9secret")
	oneLine(t, code, out, "--bgp-peer", "198.51.100.1", "--bgp-password-file")
	if strings.Contains(out, "Zq9secret") {
		t.Errorf("the error shows the password: %s", out)
	}
}

func TestManifestPodStatusAddress(t *testing.T) {
	pod, out := manifestPod(t, "--insecure-transport")
	if h := pod.Spec.Containers[0].LivenessProbe.HTTPGet; h.Host != "127.0.0.1" || h.Port.IntValue() != 7951 {
		t.Errorf("default: probe %+v, want 127.0.0.1:7951", h)
	}
	if strings.Contains(out, "--status-address") {
		t.Error("the default status address is passed although it was not set")
	}
	pod, out = manifestPod(t, "--insecure-transport", "--status-address=10.0.0.11:9100")
	if h := pod.Spec.Containers[0].LivenessProbe.HTTPGet; h.Host != "10.0.0.11" || h.Port.IntValue() != 9100 {
		t.Errorf("exposed on the node address: probe %+v, want 10.0.0.11:9100", h)
	}
	if !strings.Contains(out, "--status-address=10.0.0.11:9100") {
		t.Error("the explicit status address is not passed to the agent")
	}
}

func TestManifestPodMountsTLSCertDirectory(t *testing.T) {
	dir := t.TempDir()
	caCert, _ := writeCA(t, dir)
	tlsDir := filepath.Join(dir, "raftvip-tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Any readable files do: the manifest only mounts them.
	cert, key := filepath.Join(tlsDir, "tls.crt"), filepath.Join(tlsDir, "tls.key")
	for _, f := range []string{cert, key} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pod, _ := manifestPod(t, "--tls-ca-cert="+caCert, "--tls-cert="+cert, "--tls-key="+key)
	got := hostPaths(pod)
	if got[tlsDir] != corev1.HostPathDirectory || got[caCert] != corev1.HostPathFile {
		t.Fatalf("mounts %v: want %s as a directory (renamed-in renewals stay visible) and %s as a file", got, tlsDir, caCert)
	}
	if _, ok := got[cert]; ok {
		t.Errorf("%s mounted as a file: a renewal written by rename would stay invisible", cert)
	}
}
