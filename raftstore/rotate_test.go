package raftstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// issuer returns an issue function for node with lifetime ttl, and counts calls.
func (ca *testCA) issuer(t testing.TB, node string, ttl time.Duration) func() (tls.Certificate, error) {
	t.Helper()
	return func() (tls.Certificate, error) {
		return IssuePeerCert(ca.certPEM, ca.keyPEM, node, []net.IP{net.IPv4(127, 0, 0, 1)}, ttl)
	}
}

// writePair writes c as PEM certificate and key files.
func writePair(t *testing.T, c tls.Certificate, certFile, keyFile string) {
	t.Helper()
	kder, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}

// handshake runs one mutual TLS handshake over a pipe and returns the leaf
// certificates the client saw from the server and the server from the client.
func handshake(t testing.TB, server, client *tls.Config) (fromServer, fromClient *x509.Certificate) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv, cli := tls.Server(a, server), tls.Client(b, client)
	var wg sync.WaitGroup
	var srvErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		srvErr = srv.Handshake()
	}()
	cliErr := cli.Handshake()
	if cliErr != nil {
		// Unblock the server side, which waits for the client's next flight.
		a.Close()
	}
	wg.Wait()
	if cliErr != nil || srvErr != nil {
		t.Fatalf("handshake: client %v, server %v", cliErr, srvErr)
	}
	return cli.ConnectionState().PeerCertificates[0], srv.ConnectionState().PeerCertificates[0]
}

// runSource runs s until the test ends.
func runSource(t testing.TB, s *CertSource) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func TestIssuedCertSourceRenewsAtTwoThirds(t *testing.T) {
	ca := newTestCA(t, "ca")
	before := time.Now()
	s, err := NewIssuedCertSource(ca.issuer(t, "n1", 3*time.Hour), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	st := s.Status()
	if st.Source != CertIssued || st.Subject != "n1" || st.Renewals != 0 {
		t.Fatalf("status %+v", st)
	}
	// Two hours after issue, whatever the CA's back-dating of NotBefore.
	if lo, hi := before.Add(2*time.Hour-time.Second), time.Now().Add(2*time.Hour+time.Second); st.RenewAt.Before(lo) || st.RenewAt.After(hi) {
		t.Fatalf("renew at %s, want two thirds of the lifetime after issue (%s..%s)", st.RenewAt, lo, hi)
	}
	if !st.NotAfter.Equal(s.Leaf().NotAfter) {
		t.Fatalf("status not_after %s, leaf %s", st.NotAfter, s.Leaf().NotAfter)
	}
}

func TestIssuedCertSourceReplacesCertificate(t *testing.T) {
	ca := newTestCA(t, "ca")
	// X.509 times have whole seconds: a 2s certificate lives 1-2s.
	s, err := NewIssuedCertSource(ca.issuer(t, "n1", 2*time.Second), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	client := ca.tlsConfig(t, "client")
	cfg := s.TLSConfig(ca.pool)
	first, _ := handshake(t, cfg, client)
	runSource(t, s)
	waitFor(t, "three renewals", func() bool { return s.Status().Renewals >= 3 })
	// Both sides of the config present the renewed certificate: as server, and as
	// client (GetClientCertificate).
	asServer, _ := handshake(t, cfg, client)
	_, asClient := handshake(t, ca.tlsConfig(t, "server"), cfg)
	if asServer.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("new handshakes still present the first certificate")
	}
	if asClient.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("as client, the first certificate is still presented")
	}
	if !time.Now().Before(asServer.NotAfter) {
		t.Fatalf("presented certificate expired at %s", asServer.NotAfter)
	}
	if st := s.Status(); st.Failures != 0 || st.LastError != "" {
		t.Fatalf("failures in %+v", st)
	}
}

func TestIssuedCertSourceKeepsCertificateWhenRenewalFails(t *testing.T) {
	ca := newTestCA(t, "ca")
	issue := ca.issuer(t, "n1", time.Hour)
	fail := false
	s, err := NewIssuedCertSource(func() (tls.Certificate, error) {
		if fail {
			return tls.Certificate{}, errors.New("CA unavailable")
		}
		return issue()
	}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	old := s.Leaf()
	fail = true
	s.renew()
	st := s.Status()
	if s.Leaf() != old {
		t.Fatal("a failed renewal replaced the certificate")
	}
	if st.Failures != 1 || st.Renewals != 0 || !strings.Contains(st.LastError, "CA unavailable") {
		t.Fatalf("status after failure %+v", st)
	}
	// The retry comes a while later (a tenth of the remaining hour, capped at
	// maxRetry), not at once and not after the certificate expired.
	if wait := time.Until(st.RenewAt); wait < maxRetry-time.Second || wait > maxRetry {
		t.Fatalf("retry in %s, want about %s", wait, maxRetry)
	}
	fail = false
	s.renew()
	if st := s.Status(); s.Leaf() == old || st.Renewals != 1 || st.LastError != "" {
		t.Fatalf("recovery: status %+v", st)
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct{ left, want time.Duration }{
		{time.Hour, maxRetry},
		{20 * time.Minute, 2 * time.Minute},
		{10 * 24 * time.Hour, maxRetry},
		{100 * time.Millisecond, minRetry},
		{2 * time.Second, 200 * time.Millisecond},
		{0, maxRetry},
		{-time.Minute, maxRetry},
	} {
		if got := retryAfter(tc.left); got != tc.want {
			t.Errorf("retryAfter(%s) = %s, want %s", tc.left, got, tc.want)
		}
	}
}

func TestNewIssuedCertSourceRefusesBadCertificates(t *testing.T) {
	ca := newTestCA(t, "ca")
	if _, err := NewIssuedCertSource(func() (tls.Certificate, error) { return tls.Certificate{}, errors.New("no CA key") }, nil); err == nil || !strings.Contains(err.Error(), "no CA key") {
		t.Fatalf("issue error: got %v", err)
	}
	if _, err := NewIssuedCertSource(func() (tls.Certificate, error) { return tls.Certificate{}, nil }, nil); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty certificate: got %v", err)
	}
	expired := ca.cert(t, "n1")
	expired.Leaf = &x509.Certificate{NotAfter: time.Now().Add(-time.Minute), Subject: expired.Leaf.Subject}
	if _, err := NewIssuedCertSource(func() (tls.Certificate, error) { return expired, nil }, nil); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired certificate: got %v", err)
	}
}

func TestFileCertSourceReloadsChangedFiles(t *testing.T) {
	ca := newTestCA(t, "ca")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	a, b := ca.cert(t, "n1"), ca.cert(t, "n1")
	writePair(t, a, certFile, keyFile)
	var logs logBuffer
	s, err := NewFileCertSource(certFile, keyFile, 10*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.TLSConfig(ca.pool)
	client := ca.tlsConfig(t, "client")
	if got, _ := handshake(t, cfg, client); !got.Equal(a.Leaf) {
		t.Fatal("first handshake does not present the certificate from the files")
	}
	runSource(t, s)

	writePair(t, b, certFile, keyFile)
	waitFor(t, "the rewritten files to be loaded", func() bool { return s.Status().Renewals == 1 })
	if got, _ := handshake(t, cfg, client); !got.Equal(b.Leaf) {
		t.Fatal("after the rewrite, new handshakes do not present the new certificate")
	}
	if _, got := handshake(t, ca.tlsConfig(t, "server"), cfg); !got.Equal(b.Leaf) {
		t.Fatal("after the rewrite, dialling does not present the new certificate")
	}

	// A broken file keeps the loaded certificate and is reported once.
	writeFile(t, certFile, []byte("not a certificate"))
	waitFor(t, "the broken file to be noticed", func() bool { return s.Status().Failures == 1 })
	time.Sleep(100 * time.Millisecond) // ten more polls: the same broken file is not reported again
	if st := s.Status(); st.Failures != 1 || !strings.Contains(st.LastError, certFile) {
		t.Fatalf("status with a broken file %+v", st)
	}
	if n := logs.count("raft peer certificate not replaced"); n != 1 {
		t.Fatalf("broken file logged %d times, want once", n)
	}
	if got, _ := handshake(t, cfg, client); !got.Equal(b.Leaf) {
		t.Fatal("a broken file replaced the certificate in use")
	}

	// A certificate whose key has not arrived yet is refused; the key completes it.
	c := ca.cert(t, "n1")
	kc := filepath.Join(dir, "c.key")
	writePair(t, c, certFile, kc)
	waitFor(t, "the mismatched pair to be refused", func() bool { return s.Status().Failures == 2 })
	if err := os.Rename(kc, keyFile); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the completed pair to be loaded", func() bool { return s.Status().Renewals == 2 })
	if got, _ := handshake(t, cfg, client); !got.Equal(c.Leaf) {
		t.Fatal("the completed pair is not presented")
	}
	if st := s.Status(); st.LastError != "" || st.Source != CertFiles || !st.RenewAt.IsZero() {
		t.Fatalf("status after recovery %+v", st)
	}
}

func TestNewFileCertSourceRefusesBadInput(t *testing.T) {
	ca := newTestCA(t, "ca")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if _, err := NewFileCertSource(certFile, keyFile, time.Second, nil); err == nil || !strings.Contains(err.Error(), certFile) {
		t.Fatalf("missing files: got %v, want an error naming %s", err, certFile)
	}
	writePair(t, ca.cert(t, "n1"), certFile, keyFile)
	if _, err := NewFileCertSource(certFile, keyFile, 0, nil); err == nil || !strings.Contains(err.Error(), "poll") {
		t.Fatalf("zero poll: got %v", err)
	}
	writePair(t, ca.cert(t, "n1"), certFile, filepath.Join(dir, "other.key"))
	if _, err := NewFileCertSource(certFile, keyFile, time.Second, nil); err == nil || !strings.Contains(err.Error(), keyFile) {
		t.Fatalf("mismatched key: got %v, want an error naming %s", err, keyFile)
	}
}

func TestCertSourceMetrics(t *testing.T) {
	ca := newTestCA(t, "ca")
	s, err := NewIssuedCertSource(ca.issuer(t, "n1", time.Hour), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	s.renew()
	s.renew()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collectors()...)
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got[mf.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	want := map[string]float64{
		"raftvip_peer_cert_renewals_total":           2,
		"raftvip_peer_cert_renewal_failures_total":   0,
		"raftvip_peer_cert_expiry_timestamp_seconds": float64(s.Leaf().NotAfter.Unix()),
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v (all: %v)", name, got[name], v, got)
		}
	}
}
