package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/raftvip/raftvip/daemon"
	"github.com/raftvip/raftvip/raftstore"
)

// TestAgentsRenewPeerCertificates runs three agents whose issued certificates
// live 3s: they renew them in place, keep their leader and term, and report
// expiry and renewals in /raft/status, `raftvip status` and /metrics.
func TestAgentsRenewPeerCertificates(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := writeCA(t, dir)
	agents := startLoopbackAgents(t, dir, func(string) []string {
		return []string{"--tls-ca-cert=" + caCert, "--tls-ca-key=" + caKey, "--peer-cert-lifetime=3s", "--nice=0",
			"--raft-heartbeat-timeout=1s", "--raft-leader-loss-timeout=1s", "--raft-election-timeout=1s", "--raft-leader-lease-timeout=500ms"}
	})
	leader, term := waitAgreement(t, agents, "")
	deadline := time.Now().Add(time.Minute)
	for _, a := range agents {
		for {
			st, err := getStatus(a.status)
			if err == nil && st.Certificate != nil && st.Certificate.Renewals >= 4 {
				if c := st.Certificate; c.Source != raftstore.CertIssued || c.Subject != a.name || c.Failures != 0 || !c.NotAfter.After(time.Now()) {
					t.Fatalf("%s: certificate status %+v", a.name, c)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: certificate not renewed 4 times: %+v %v", a.name, st.Certificate, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if l, tm := waitAgreement(t, agents, ""); l != leader || tm != term {
		t.Fatalf("leader %s term %d after renewals, was %s term %d", l, tm, leader, term)
	}

	code, out := run(t, nil, "status", "--addr="+agents[0].status)
	if code != 0 || !strings.Contains(out, "peer certificate:") || !strings.Contains(out, "cp1 (issued), expires") {
		t.Fatalf("raftvip status: exit %d\n%s", code, out)
	}
	resp, err := http.Get(agents[0].status + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"raftvip_peer_cert_expiry_timestamp_seconds ", "raftvip_peer_cert_renewals_total ", "raftvip_peer_cert_renewal_failures_total 0"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
}

func TestStatusShowsPeerCertificate(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		c    raftstore.CertStatus
		want string
	}{
		{raftstore.CertStatus{Source: "issued", Subject: "cp1", NotAfter: now.Add(50 * time.Hour), Renewals: 3},
			"cp1 (issued), expires 2026-12-08T14:00:00Z (in 50h0m0s), 3 renewals"},
		{raftstore.CertStatus{Source: "files", Subject: "cp2", NotAfter: now.Add(-time.Minute), Renewals: 0, Failures: 2},
			"cp2 (files), EXPIRED 2026-12-06T11:59:00Z, 0 renewals, 2 failed"},
	} {
		if got := certLine(tc.c, now); got != tc.want {
			t.Errorf("certLine = %q, want %q", got, tc.want)
		}
	}
	var b strings.Builder
	printStatus(&b, daemon.RaftStatus{Certificate: &raftstore.CertStatus{Source: "files", Subject: "cp1", NotAfter: time.Now().Add(time.Hour),
		LastError: "load /etc/raftvip/tls.crt: bad PEM"}})
	for _, want := range []string{"peer certificate:", "cp1 (files)", "WARNING: peer certificate not replaced: load /etc/raftvip/tls.crt: bad PEM"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	printStatus(&b, daemon.RaftStatus{})
	if strings.Contains(b.String(), "peer certificate") {
		t.Errorf("insecure transport shows a certificate:\n%s", b.String())
	}
}
