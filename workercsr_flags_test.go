package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWorkerCertificateFlags: a node with no way to get a peer certificate, and
// --tls-csr where it cannot work, each stop the agent with one line naming the
// flags, before anything is touched.
func TestWorkerCertificateFlags(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := writeCA(t, dir)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noPod := []string{"KUBERNETES_SERVICE_HOST="}
	worker := []string{"agent", "--node-name=w1", "--advertise-address=127.0.0.1", "--raft-port=17951",
		"--status-address=127.0.0.1:0", "--join=127.0.0.2:17950", "--tls-ca-cert=" + caCert}
	for _, tc := range []struct {
		name  string
		args  []string
		names []string
	}{
		{"worker without any certificate source", worker, []string{"--tls-ca-key", "--tls-csr", "--tls-cert"}},
		{"worker without even a CA", []string{"agent", "--node-name=w1", "--advertise-address=127.0.0.1", "--join=127.0.0.2:17950"},
			[]string{"--tls-ca-cert", "--tls-csr"}},
		{"csr without kubeconfig", append(worker, "--tls-csr"), []string{"--tls-csr", "--kubeconfig"}},
		{"csr on a voter", []string{"agent", "--node-name=n1", "--advertise-address=127.0.0.1", "--peer=n1=127.0.0.1:7950",
			"--tls-ca-cert=" + caCert, "--tls-csr", "--kubeconfig=" + kubeconfig}, []string{"--tls-csr", "voter", "--tls-ca-key"}},
		{"csr on a control-plane joiner", append(worker, "--control-plane", "--tls-csr", "--kubeconfig="+kubeconfig), []string{"--tls-csr", "voter"}},
		{"csr with the CA key", append(worker, "--tls-csr", "--kubeconfig="+kubeconfig, "--tls-ca-key="+caKey), []string{"--tls-csr", "--tls-ca-key"}},
		{"csr on an insecure transport", []string{"agent", "--node-name=w1", "--advertise-address=127.0.0.1", "--join=127.0.0.2:17950",
			"--insecure-transport", "--tls-csr", "--kubeconfig=" + kubeconfig}, []string{"--tls-csr", "--insecure-transport"}},
		{"worker lifetime too short", []string{"agent", "--node-name=n1", "--advertise-address=127.0.0.1", "--peer=n1=127.0.0.1:7950",
			"--tls-ca-cert=" + caCert, "--tls-ca-key=" + caKey, "--worker-cert-lifetime=1s"}, []string{"--worker-cert-lifetime", "1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := run(t, noPod, tc.args...)
			line := strings.TrimSpace(out)
			if code != 2 || strings.Contains(line, "\n") {
				t.Fatalf("exit %d, want 2 with one line:\n%s", code, out)
			}
			for _, n := range tc.names {
				if !strings.Contains(line, n) {
					t.Errorf("message %q does not name %s", line, n)
				}
			}
		})
	}
}
