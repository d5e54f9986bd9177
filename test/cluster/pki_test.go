package cluster

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/csv"
	"encoding/pem"
	"net"
	"slices"
	"strings"
	"testing"
)

func TestServingCertVerifiesAgainstCA(t *testing.T) {
	ca, err := newCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	if !ca.cert.IsCA || ca.cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("CA certificate cannot sign: IsCA=%v usage=%v", ca.cert.IsCA, ca.cert.KeyUsage)
	}
	sans := []string{"198.51.100.100", "2001:db8:100::10", "kubernetes.default.svc"}
	srv, err := newServingCert(ca, "kube-apiserver", sans)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(srv.CertPEM, srv.KeyPEM); err != nil {
		t.Fatalf("serving pair does not load: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca.CertPEM) {
		t.Fatal("CA PEM does not parse")
	}
	for _, name := range sans {
		if _, err := srv.cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("verify as %s: %v", name, err)
		}
	}
	if _, err := srv.cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "198.51.100.101"}); err == nil {
		t.Error("certificate verified for an address it does not name")
	}
	other, err := newCA("other-ca")
	if err != nil {
		t.Fatal(err)
	}
	otherRoots := x509.NewCertPool()
	otherRoots.AppendCertsFromPEM(other.CertPEM)
	if _, err := srv.cert.Verify(x509.VerifyOptions{Roots: otherRoots, DNSName: sans[0]}); err == nil {
		t.Error("certificate verified against a foreign CA")
	}
	if len(srv.cert.IPAddresses) != 2 || len(srv.cert.DNSNames) != 1 {
		t.Errorf("SANs split into IPs %v and names %v, want 2 and 1", srv.cert.IPAddresses, srv.cert.DNSNames)
	}
}

func TestServingSANs(t *testing.T) {
	got := servingSANs("198.51.100.10", []string{"198.51.100.100"})
	for _, want := range []string{"198.51.100.10", "127.0.0.1", "::1", "10.96.0.1", "fd00:10:96::1", "kubernetes.default.svc", "198.51.100.100"} {
		if !slices.Contains(got, want) {
			t.Errorf("SANs %v lack %s", got, want)
		}
	}
	_, v4, _ := net.ParseCIDR(ServiceCIDRv4)
	_, v6, _ := net.ParseCIDR(ServiceCIDRv6)
	if !v4.Contains(net.ParseIP("10.96.0.1")) || !v6.Contains(net.ParseIP("fd00:10:96::1")) {
		t.Error("the kubernetes Service IPs in the SANs are outside the service ranges")
	}
}

func TestServiceAccountKey(t *testing.T) {
	priv, pub, err := newServiceAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := pem.Decode(pub)
	if pb == nil || pb.Type != "PUBLIC KEY" {
		t.Fatalf("public key PEM %q", pub)
	}
	pk, err := x509.ParsePKIXPublicKey(pb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pem.Decode(priv)
	if kb == nil || kb.Type != "EC PRIVATE KEY" {
		t.Fatalf("private key PEM type %v", kb)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.PublicKey.Equal(pk.(*ecdsa.PublicKey)) {
		t.Fatal("public key does not belong to the private key")
	}
}

func TestNewTokenIsRandom(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, err := newToken()
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) != 32 || strings.ContainsAny(tok, ",\" \n") {
			t.Fatalf("token %q is not 32 plain characters", tok)
		}
		if seen[tok] {
			t.Fatalf("token %q repeated", tok)
		}
		seen[tok] = true
	}
}

func TestTokenFileParsesAsCSV(t *testing.T) {
	text := tokenFile(map[string]User{
		"tok-b": {Name: "admin", Groups: []string{"system:masters", "ops"}},
		"tok-a": {Name: "raftvip"},
	})
	r := csv.NewReader(strings.NewReader(text))
	r.FieldsPerRecord = -1 // the groups column is optional, as kube-apiserver reads it
	records, err := r.ReadAll()
	if err != nil {
		t.Fatalf("token file %q: %v", text, err)
	}
	if len(records) != 2 {
		t.Fatalf("%d records, want 2", len(records))
	}
	if got := records[0]; !slices.Equal(got, []string{"tok-a", "raftvip", "raftvip"}) {
		t.Errorf("first record %q (sorted by token), want user without groups", got)
	}
	if got := records[1]; !slices.Equal(got, []string{"tok-b", "admin", "admin", "system:masters,ops"}) {
		t.Errorf("second record %q, want groups in one quoted field", got)
	}
}
