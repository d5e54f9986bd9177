package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// writeTestCA writes a throwaway CA certificate and key to dir.
func writeTestCA(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	for f, b := range map[string][]byte{
		certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

// tlsConfig is a valid voter configuration with mutual TLS from a CA key.
func tlsConfig(t *testing.T) Config {
	c := bgpConfig()
	c.Mode, c.BGPAS, c.BGPPeers, c.InsecureTransport = ModeL2, "", nil, false
	c.TLSCACert, c.TLSCAKey = writeTestCA(t, t.TempDir())
	return c
}

func TestTransportTLSIssuesWithTheConfiguredLifetime(t *testing.T) {
	for _, tc := range []struct {
		lifetime, want time.Duration
	}{
		{0, defaultPeerCertLifetime},
		{time.Minute, time.Minute},
		{24 * time.Hour, 24 * time.Hour},
	} {
		c := tlsConfig(t)
		c.PeerCertLifetime = tc.lifetime
		p, err := c.Validate()
		if err != nil {
			t.Fatal(err)
		}
		before := time.Now()
		cfg, src, err := p.transportTLS(t.Context(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		st := src.Status()
		// X.509 times are whole seconds.
		if lo, hi := before.Add(tc.want-time.Second), time.Now().Add(tc.want); st.NotAfter.Before(lo) || st.NotAfter.After(hi) {
			t.Errorf("lifetime %s: not after %s, want %s..%s", tc.lifetime, st.NotAfter, lo, hi)
		}
		if st.Source != raftstore.CertIssued || st.Subject != "n1" || st.RenewAt.After(st.NotAfter) {
			t.Errorf("status %+v", st)
		}
		if cfg.GetCertificate == nil || cfg.GetClientCertificate == nil || len(cfg.Certificates) != 0 {
			t.Error("the TLS config does not take its certificate from the source at each handshake")
		}
		if ip := net.IP(src.Leaf().IPAddresses[0]); !ip.Equal(net.ParseIP("198.51.100.11")) {
			t.Errorf("certificate IP %s, want the advertise address", ip)
		}
	}
}

func TestTransportTLSFromFiles(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := writeTestCA(t, dir)
	caPEM, keyPEM := mustRead(t, caCert), mustRead(t, caKey)
	cert, err := raftstore.IssuePeerCert(caPEM, keyPEM, "n1", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	mustWrite(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}))
	mustWrite(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))

	c := tlsConfig(t)
	c.TLSCACert, c.TLSCAKey, c.TLSCert, c.TLSKey = caCert, "", certFile, keyFile
	p, err := c.Validate()
	if err != nil {
		t.Fatal(err)
	}
	_, src, err := p.transportTLS(t.Context(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if st := src.Status(); st.Source != raftstore.CertFiles || !src.Leaf().Equal(cert.Leaf) {
		t.Fatalf("status %+v", st)
	}
	// A key that does not match: one error naming --tls-cert.
	other, err := raftstore.IssuePeerCert(caPEM, keyPEM, "n1", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Certificate[0]}))
	_, _, err = p.transportTLS(t.Context(), slog.New(slog.DiscardHandler))
	var fe *FlagError
	if !errors.As(err, &fe) || fe.Flag != "tls-cert" || !strings.Contains(err.Error(), keyFile) {
		t.Fatalf("mismatched key: %v", err)
	}
}

func TestTransportTLSInsecure(t *testing.T) {
	p, err := bgpConfigL2().Validate()
	if err != nil {
		t.Fatal(err)
	}
	cfg, src, err := p.transportTLS(t.Context(), slog.New(slog.DiscardHandler))
	if cfg != nil || src != nil || err != nil {
		t.Fatalf("insecure transport: %v %v %v", cfg, src, err)
	}
}

func TestPeerCertLifetimeTooShort(t *testing.T) {
	for _, d := range []time.Duration{time.Second, 2999 * time.Millisecond, -time.Hour} {
		c := tlsConfig(t)
		c.PeerCertLifetime = d
		_, err := c.Validate()
		var fe *FlagError
		if !errors.As(err, &fe) || fe.Flag != "peer-cert-lifetime" || !strings.Contains(err.Error(), d.String()) {
			t.Errorf("lifetime %s: %v, want a --peer-cert-lifetime error", d, err)
		}
	}
}

// bgpConfigL2 is bgpConfig in l2 mode on an insecure transport.
func bgpConfigL2() Config {
	c := bgpConfig()
	c.Mode, c.BGPAS, c.BGPPeers = ModeL2, "", nil
	return c
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustWrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCheckOwnCert(t *testing.T) {
	cert := func(cn string, orgs ...string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn, Organization: orgs}}
	}
	for _, tc := range []struct {
		name  string
		leaf  *x509.Certificate
		voter bool
		want  string
	}{
		{"voter with the control-plane O", cert("cp1", raftstore.ControlPlaneOrganization), true, ""},
		{"voter among other Os", cert("cp1", "system:masters", raftstore.ControlPlaneOrganization), true, ""},
		{"worker without the O", cert("cp1"), false, ""},
		{"worker with the O", cert("cp1", raftstore.ControlPlaneOrganization), false, ""},
		{"voter without the O", cert("cp1", "system:nodes"), true, `has no Organization "raftvip:control-plane"`},
		{"name of another node", cert("cp2", raftstore.ControlPlaneOrganization), true, `certificate is for "cp2" but --node-name is "cp1"`},
		{"name differs in case", cert("CP1", raftstore.ControlPlaneOrganization), false, `is for "CP1"`},
		{"empty name", cert("", raftstore.ControlPlaneOrganization), true, `is for ""`},
	} {
		err := checkOwnCert(tc.leaf, "cp1", tc.voter)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestTransportTLSRefusesCertOfAnotherNode(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := writeTestCA(t, dir)
	cert, err := raftstore.IssuePeerCert(mustRead(t, caCert), mustRead(t, caKey), "someone-else", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	mustWrite(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}))
	mustWrite(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	c := tlsConfig(t)
	c.TLSCACert, c.TLSCAKey, c.TLSCert, c.TLSKey = caCert, "", certFile, keyFile
	p, err := c.Validate()
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = p.transportTLS(t.Context(), slog.New(slog.DiscardHandler))
	var fe *FlagError
	if !errors.As(err, &fe) || fe.Flag != "tls-cert" || !strings.Contains(err.Error(), `"someone-else"`) || !strings.Contains(err.Error(), certFile) {
		t.Fatalf("certificate of another node: %v", err)
	}
}
