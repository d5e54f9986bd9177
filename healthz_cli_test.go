package main

import (
	"io"
	"net/http"
	"os"
	"testing"
	"time"
)

// TestVoterWithoutInterfaceStaysHealthy: a voter with no interface to announce
// on (a quorum member that carries no VIP) has no announce work, but /healthz
// must not call its announce loop stuck, or the kubelet's liveness probe
// restarts a healthy member forever. The bound for a stuck loop is 5 s.
func TestVoterWithoutInterfaceStaysHealthy(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := writeCA(t, dir)
	agents := startLoopbackAgents(t, dir, func(string) []string {
		return []string{"--tls-ca-cert=" + caCert, "--tls-ca-key=" + caKey}
	})
	waitAgreement(t, agents, "")
	time.Sleep(6 * time.Second)
	for _, a := range agents {
		resp, err := http.Get(a.status + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			log, _ := os.ReadFile(a.log)
			t.Fatalf("%s /healthz: %d %s\n%s", a.name, resp.StatusCode, body, log)
		}
	}
}
