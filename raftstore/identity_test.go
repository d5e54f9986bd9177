package raftstore

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"testing"
	"time"
)

func TestIssuedPeerCertIsControlPlane(t *testing.T) {
	ca := newTestCA(t, "ca")
	cert, err := IssuePeerCert(ca.certPEM, ca.keyPEM, "cp1", []net.IP{net.ParseIP("127.0.0.1")}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id := certIdentity(cert.Leaf)
	if id.Name != "cp1" || !id.ControlPlane || !id.Authenticated {
		t.Fatalf("identity = %+v, want cp1, control plane, authenticated", id)
	}
}

func TestCertIdentity(t *testing.T) {
	for _, tc := range []struct {
		name string
		subj pkix.Name
		want Identity
	}{
		{"worker", pkix.Name{CommonName: "w1"}, Identity{Name: "w1", Authenticated: true}},
		{"other org", pkix.Name{CommonName: "w1", Organization: []string{"system:masters"}}, Identity{Name: "w1", Authenticated: true}},
		{"control plane", pkix.Name{CommonName: "cp2", Organization: []string{"x", ControlPlaneOrganization}}, Identity{Name: "cp2", ControlPlane: true, Authenticated: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := certIdentity(&x509.Certificate{Subject: tc.subj}); got != tc.want {
				t.Fatalf("certIdentity = %+v, want %+v", got, tc.want)
			}
		})
	}
}
