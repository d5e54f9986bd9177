package raftstore

import (
	"testing"
	"time"
)

// BenchmarkCertRotation measures one renewal of an issued peer certificate:
// a new P-256 key, signing by the CA and the swap new handshakes pick up. At
// the default lifetime it runs once every 4.7 days.
func BenchmarkCertRotation(b *testing.B) {
	ca := newTestCA(b, "ca")
	s, err := NewIssuedCertSource(ca.issuer(b, "n1", time.Hour), testLogger())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s.renew()
	}
	if st := s.Status(); st.Failures != 0 {
		b.Fatalf("renewals failed: %s", st.LastError)
	}
	b.ReportMetric(float64(s.Status().Renewals)/float64(b.N), "renewals/op")
}

// BenchmarkHandshakeCertSource compares a mutual TLS handshake with a fixed
// certificate and with one handed out by a CertSource at each handshake, to
// show that renewability costs nothing measurable per connection.
func BenchmarkHandshakeCertSource(b *testing.B) {
	ca := newTestCA(b, "ca")
	s, err := NewIssuedCertSource(ca.issuer(b, "server", time.Hour), testLogger())
	if err != nil {
		b.Fatal(err)
	}
	client := ca.tlsConfig(b, "client")
	for _, tc := range []struct {
		name string
		srv  func() *CertSource
	}{
		{"fixed", nil},
		{"cert-source", func() *CertSource { return s }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			server := ca.tlsConfig(b, "server")
			if tc.srv != nil {
				server = tc.srv().TLSConfig(ca.pool)
			}
			for b.Loop() {
				handshake(b, server, client)
			}
		})
	}
}
