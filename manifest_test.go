package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestManifestPodGolden(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := writeCA(t, dir)
	// The golden file must not depend on the temp dir's name.
	stable := "/etc/kubernetes/pki"
	code, out := run(t, nil, "manifest", "pod", "--image=ghcr.io/raftvip/raftvip:v0.1.0",
		"--node-name=cp1", "--interface=eth0", "--advertise-address=10.0.0.11",
		"--peer=cp1=10.0.0.11:7950", "--peer=cp2=10.0.0.12:7950", "--peer=cp3=10.0.0.13:7950",
		"--control-plane-vip=10.0.0.100", "--pool=default=10.0.0.200-10.0.0.250",
		"--tls-ca-cert="+caCert, "--tls-ca-key="+caKey, "--data-dir=/var/lib/raftvip")
	if code != 0 {
		t.Fatalf("manifest pod: exit %d\n%s", code, out)
	}
	out = strings.ReplaceAll(out, dir, stable)
	golden := filepath.Join("testdata", "pod.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestManifestPodGolden -update)", err)
	}
	if out != string(want) {
		t.Fatalf("manifest differs from %s (rerun with -update if intended):\n%s", golden, out)
	}
	for _, must := range []string{"hostNetwork: true", "priorityClassName: system-node-critical", "privileged: false",
		"- NET_ADMIN", "- NET_RAW", "path: /healthz", "--node-name=cp1", "mountPath: /var/lib/raftvip",
		"path: /etc/kubernetes/pki/ca.key", "readOnly: true"} {
		if !strings.Contains(out, must) {
			t.Errorf("manifest lacks %q", must)
		}
	}
	if strings.Contains(out, "privileged: true") {
		t.Error("manifest is privileged")
	}
}

func TestManifestPodRefusesBadFlags(t *testing.T) {
	code, out := run(t, nil, "manifest", "pod", "--node-name=cp1", "--advertise-address=10.0.0.11",
		"--peer=cp2=10.0.0.12:7950", "--insecure-transport")
	if code != 2 || !strings.Contains(out, "--peer") {
		t.Fatalf("manifest pod with a peer list without self: exit %d: %s", code, out)
	}
}
