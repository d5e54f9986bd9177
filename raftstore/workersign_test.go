package raftstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// workerIssuer signs a fresh key with the worker profile, as the leader does
// for a worker's CSR.
func (ca *testCA) workerIssuer(t testing.TB, node string, ttl time.Duration) func() (tls.Certificate, error) {
	t.Helper()
	return func() (tls.Certificate, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, err
		}
		b, err := SignWorkerCert(ca.certPEM, ca.keyPEM, key.Public(), node, []net.IP{net.IPv4(127, 0, 0, 1)}, ttl)
		if err != nil {
			return tls.Certificate{}, err
		}
		block, _ := pem.Decode(b)
		return tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key}, nil
	}
}

func TestSignWorkerCertIsNeverControlPlane(t *testing.T) {
	ca := newTestCA(t, "ca")
	c, err := ca.workerIssuer(t, "w1", time.Hour)()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	id := certIdentity(leaf)
	if id.ControlPlane || id.Name != "w1" {
		t.Fatalf("worker certificate identity %+v", id)
	}
	if err := verifyPeer([]*x509.Certificate{leaf}, ca.pool); err != nil {
		t.Fatalf("worker certificate does not verify for both usages: %v", err)
	}
	// A node that knows no configuration yet refuses it as a leader; a
	// configuration that lists it as a nonvoter refuses its Raft connections.
	if err := mayRaft(id, raft.Configuration{}, nil); err == nil {
		t.Fatal("a worker certificate may speak Raft to a fresh node")
	}
	cfg := raft.Configuration{Servers: []raft.Server{{ID: "n1", Suffrage: raft.Voter}, {ID: "w1", Suffrage: raft.Nonvoter}}}
	if err := mayRaft(id, cfg, nil); !errors.Is(err, errNotVoter) {
		t.Fatalf("a worker certificate of a nonvoter: %v", err)
	}
}

func TestCSRCertSourceRenews(t *testing.T) {
	ca := newTestCA(t, "ca")
	issue := ca.workerIssuer(t, "w1", 3*time.Second)
	first, err := issue()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewCSRCertSource(first, issue, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	st := s.Status()
	if st.Source != CertCSR || st.Subject != "w1" || st.RenewAt.IsZero() {
		t.Fatalf("status %+v", st)
	}
	firstSerial := s.Leaf().SerialNumber
	runSource(t, s)
	waitFor(t, "two renewals", func() bool { return s.Status().Renewals >= 2 })
	if s.Leaf().SerialNumber.Cmp(firstSerial) == 0 {
		t.Fatal("still the first certificate")
	}
	if st := s.Status(); st.Failures != 0 {
		t.Fatalf("renewal failures: %+v", st)
	}
}

func TestNewCSRCertSourceRefusesExpired(t *testing.T) {
	ca := newTestCA(t, "ca")
	c, err := ca.workerIssuer(t, "w1", time.Second)()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, err := NewCSRCertSource(c, nil, testLogger()); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired first certificate: %v", err)
	}
}
