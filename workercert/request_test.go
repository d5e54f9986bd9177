package workercert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// testCA returns a CA certificate and key as PEM, like kubeadm's ca.crt/ca.key.
func testCA(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// TestRequestSignRoundTrip runs the whole exchange without the API server: the
// worker's request is approved, signed with the worker profile and paired with
// the key that never left the worker; the result completes a mutual TLS
// handshake with a control-plane certificate from the same CA, and names no
// control-plane Organization.
func TestRequestSignRoundTrip(t *testing.T) {
	caPEM, caKey := testCA(t)
	ips := []net.IP{net.ParseIP("10.0.0.21")}
	key, req, err := NewRequest("w1", ips)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(req), "PRIVATE KEY") {
		t.Fatal("the request carries the private key")
	}
	d := Decide(Request{SignerName: SignerName, Username: sa, Extra: map[string][]string{ExtraNodeName: {"w1"}, ExtraNodeUID: {"u1"}},
		Usages: Usages, PEM: req}, facts())
	if d.Verdict != Approve {
		t.Fatalf("the worker's own request was %s: %s", d.Verdict, d.Reason)
	}
	certPEM, err := raftstore.SignWorkerCert(caPEM, caKey, d.Request.PublicKey, d.NodeName, d.IPs, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := Certificate(certPEM, key, "w1")
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if len(leaf.Subject.Organization) != 0 || leaf.Subject.CommonName != "w1" || !leaf.IPAddresses[0].Equal(ips[0]) || leaf.DNSNames[0] != "w1" {
		t.Fatalf("worker certificate subject %v, IPs %v, DNS %v", leaf.Subject, leaf.IPAddresses, leaf.DNSNames)
	}
	if life := time.Until(leaf.NotAfter); life > time.Hour || life < 59*time.Minute {
		t.Fatalf("lifetime %s, want the hour asked for", life)
	}

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cp, err := raftstore.IssuePeerCert(caPEM, caKey, "cp1", []net.IP{net.ParseIP("127.0.0.1")}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", raftstore.MutualTLSConfig(cp, pool))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			seen <- err.Error()
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			seen <- err.Error()
			return
		}
		st := tc.ConnectionState()
		seen <- st.PeerCertificates[0].Subject.String()
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), raftstore.MutualTLSConfig(cert, pool))
	if err != nil {
		t.Fatalf("worker handshake: %v", err)
	}
	defer c.Close()
	if got := <-seen; got != "CN=w1" {
		t.Fatalf("control-plane side saw %q, want CN=w1 without an Organization", got)
	}
}

func TestCertificateRefusesWrongKeyOrName(t *testing.T) {
	caPEM, caKey := testCA(t)
	key, _, err := NewRequest("w1", nil)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := NewRequest("w1", nil)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := raftstore.SignWorkerCert(caPEM, caKey, other.Public(), "w1", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Certificate(certPEM, key, "w1"); err == nil || !strings.Contains(err.Error(), "not for the key") {
		t.Fatalf("certificate for another key: %v", err)
	}
	if _, err := Certificate(certPEM, other, "w2"); err == nil || !strings.Contains(err.Error(), `for "w1", not "w2"`) {
		t.Fatalf("certificate for another node: %v", err)
	}
	if _, err := Certificate([]byte("nothing"), other, "w1"); err == nil {
		t.Fatal("accepted a status.certificate without a certificate")
	}
}

func TestSignWorkerCertRefusesBadInput(t *testing.T) {
	caPEM, caKey := testCA(t)
	otherCA, otherKey := testCA(t)
	key, _, err := NewRequest("w1", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		ca, caKey []byte
		node      string
		ttl       time.Duration
		want      string
	}{
		"empty name":     {caPEM, caKey, "", time.Hour, "empty node name"},
		"zero ttl":       {caPEM, caKey, "w1", 0, "must be positive"},
		"mismatched key": {caPEM, otherKey, "w1", time.Hour, "does not match"},
		"no CA":          {nil, caKey, "w1", time.Hour, "CA certificate"},
		"no key":         {otherCA, nil, "w1", time.Hour, "CA key"},
	} {
		if _, err := raftstore.SignWorkerCert(tc.ca, tc.caKey, key.Public(), tc.node, nil, tc.ttl); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", name, err, tc.want)
		}
	}
}
