package raftstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIssuePeerCert(t *testing.T) {
	ca := newTestCA(t, "test-ca")
	ip := net.ParseIP("198.51.100.11")
	c, err := IssuePeerCert(ca.certPEM, ca.keyPEM, "cp1", []net.IP{ip}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Subject.CommonName != "cp1" || !slices.Equal(leaf.DNSNames, []string{"cp1"}) {
		t.Errorf("CN %q DNS %v, want cp1", leaf.Subject.CommonName, leaf.DNSNames)
	}
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(ip) {
		t.Errorf("IP SANs %v, want %v", leaf.IPAddresses, ip)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Errorf("ext key usage %v, want server and client auth", leaf.ExtKeyUsage)
	}
	if leaf.IsCA {
		t.Error("peer certificate is a CA")
	}
	if err := verifyPeer([]*x509.Certificate{leaf}, ca.pool); err != nil {
		t.Errorf("issued certificate does not verify against its CA: %v", err)
	}
	if err := verifyPeer([]*x509.Certificate{leaf}, newTestCA(t, "other").pool); err == nil {
		t.Error("issued certificate verifies against a foreign CA")
	}
	if c.Leaf == nil || c.PrivateKey == nil {
		t.Error("certificate lacks Leaf or PrivateKey")
	}
}

func TestIssuePeerCertNodeNameIP(t *testing.T) {
	ca := newTestCA(t, "test-ca")
	c, err := IssuePeerCert(ca.certPEM, ca.keyPEM, "198.51.100.12", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Leaf.DNSNames) != 0 || len(c.Leaf.IPAddresses) != 1 {
		t.Fatalf("IP node name: DNS %v IPs %v, want it as an IP SAN", c.Leaf.DNSNames, c.Leaf.IPAddresses)
	}
}

// rsaCA is a CA in kubeadm's format: RSA key in PKCS#1 ("RSA PRIVATE KEY").
func rsaCA(t *testing.T, pkcs8 bool) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(30 * time.Minute),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	block := &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}
	if pkcs8 {
		b, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: b}
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(block), pool
}

func TestIssuePeerCertFromRSACA(t *testing.T) {
	for _, pkcs8 := range []bool{false, true} {
		certPEM, keyPEM, pool := rsaCA(t, pkcs8)
		c, err := IssuePeerCert(certPEM, keyPEM, "cp1", nil, 24*time.Hour)
		if err != nil {
			t.Fatalf("pkcs8=%v: %v", pkcs8, err)
		}
		if err := verifyPeer([]*x509.Certificate{c.Leaf}, pool); err != nil {
			t.Fatalf("pkcs8=%v: %v", pkcs8, err)
		}
		// The CA expires in 30 minutes; the peer certificate must not outlive it.
		ca, _ := parseCertPEM(certPEM)
		if c.Leaf.NotAfter.After(ca.NotAfter) {
			t.Fatalf("peer certificate outlives its CA: %s > %s", c.Leaf.NotAfter, ca.NotAfter)
		}
	}
}

func TestIssuePeerCertErrors(t *testing.T) {
	ca := newTestCA(t, "a")
	other := newTestCA(t, "b")
	leaf := ca.cert(t, "leaf")
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]})
	leafKey, _ := x509.MarshalECPrivateKey(leaf.PrivateKey.(*ecdsa.PrivateKey))
	leafKeyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: leafKey})
	cases := map[string]struct {
		cert, key []byte
		node      string
		ttl       time.Duration
		want      string
	}{
		"empty node":      {ca.certPEM, ca.keyPEM, "", time.Hour, "empty node name"},
		"zero ttl":        {ca.certPEM, ca.keyPEM, "n", 0, "must be positive"},
		"no cert PEM":     {[]byte("junk"), ca.keyPEM, "n", time.Hour, "CA certificate: no PEM"},
		"no key PEM":      {ca.certPEM, []byte("junk"), "n", time.Hour, "CA key: no PEM"},
		"mismatched key":  {ca.certPEM, other.keyPEM, "n", time.Hour, "does not match"},
		"not a CA":        {leafPEM, leafKeyPEM, "n", time.Hour, "not a CA"},
		"corrupt key PEM": {ca.certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}}), "n", time.Hour, "EC PRIVATE KEY"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := IssuePeerCert(tc.cert, tc.key, tc.node, nil, tc.ttl)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadCAPool(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "a")
	good := filepath.Join(dir, "ca.crt")
	// A bundle with a key block in between: only certificates count.
	bundle := append(append(append([]byte{}, ca.certPEM...), ca.keyPEM...), newTestCA(t, "b").certPEM...)
	if err := os.WriteFile(good, bundle, 0o600); err != nil {
		t.Fatal(err)
	}
	pool, err := LoadCAPool(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyPeer([]*x509.Certificate{ca.cert(t, "n").Leaf}, pool); err != nil {
		t.Fatalf("loaded pool does not verify a peer of its CA: %v", err)
	}

	empty := filepath.Join(dir, "empty.crt")
	bad := filepath.Join(dir, "bad.crt")
	if err := os.WriteFile(empty, []byte("no pem here"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing.crt"), empty, bad} {
		if _, err := LoadCAPool(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("LoadCAPool(%s) error = %v, want one naming the file", path, err)
		}
	}
}

func TestMutualTLSConfig(t *testing.T) {
	ca := newTestCA(t, "a")
	cfg := MutualTLSConfig(ca.cert(t, "n"), ca.pool)
	if cfg.MinVersion != tls.VersionTLS13 {
		t.Errorf("MinVersion = %x, want TLS 1.3", cfg.MinVersion)
	}
	if cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("ClientAuth = %v", cfg.ClientAuth)
	}
	if cfg.VerifyConnection == nil {
		t.Fatal("no VerifyConnection: server certificates would go unchecked")
	}
	if err := cfg.VerifyConnection(tls.ConnectionState{}); err == nil {
		t.Error("VerifyConnection accepted a peer without certificates")
	}
}

func TestVerifyPeerNeedsBothUsages(t *testing.T) {
	ca := newTestCA(t, "a")
	caCert, _ := parseCertPEM(ca.certPEM)
	caKey, _ := parsePrivateKeyPEM(ca.keyPEM)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "server-only"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	if err := verifyPeer([]*x509.Certificate{leaf}, ca.pool); err == nil {
		t.Fatal("a server-only certificate was accepted for a peer that also dials")
	}
}
