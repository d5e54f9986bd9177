package workercert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
)

// NewRequest makes a fresh ECDSA P-256 key and a CSR for nodeName (CommonName
// and, unless it is an IP, DNS SAN) with ips as IP SANs. The key stays with the
// caller: only the CSR goes to the API server.
func NewRequest(nodeName string, ips []net.IP) (*ecdsa.PrivateKey, []byte, error) {
	if nodeName == "" {
		return nil, nil, errors.New("worker certificate request: empty node name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("worker certificate request: generate key: %w", err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: nodeName}, IPAddresses: append([]net.IP(nil), ips...)}
	if ip := net.ParseIP(nodeName); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else {
		tmpl.DNSNames = []string{nodeName}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, nil, fmt.Errorf("worker certificate request: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// Certificate pairs the signed certificate (PEM, as in status.certificate) with
// the key NewRequest made, after checking it is a certificate for that key and
// for nodeName.
func Certificate(certPEM []byte, key *ecdsa.PrivateKey, nodeName string) (tls.Certificate, error) {
	var c tls.Certificate
	for rest := certPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			c.Certificate = append(c.Certificate, block.Bytes)
		}
	}
	if len(c.Certificate) == 0 {
		return tls.Certificate{}, errors.New("status.certificate holds no PEM CERTIFICATE")
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("status.certificate: %w", err)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return tls.Certificate{}, errors.New("status.certificate is not for the key of our request")
	}
	if leaf.Subject.CommonName != nodeName {
		return tls.Certificate{}, fmt.Errorf("status.certificate is for %q, not %q", leaf.Subject.CommonName, nodeName)
	}
	c.PrivateKey, c.Leaf = key, leaf
	return c, nil
}
