package raftstore

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// SignWorkerCert signs a worker's public key (from an approved CSR) with the
// cluster CA, with the worker profile: CommonName and DNS SAN nodeName, IP SANs
// ips, both authentication usages, and no Organization, so the certificate can
// never make its holder a voter (see ControlPlaneOrganization). Validity is ttl,
// capped at the CA's expiry. It returns the certificate as PEM, for
// status.certificate.
func SignWorkerCert(caCertPEM, caKeyPEM []byte, pub crypto.PublicKey, nodeName string, ips []net.IP, ttl time.Duration) ([]byte, error) {
	if nodeName == "" {
		return nil, errors.New("sign worker certificate: empty node name")
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("sign worker certificate: ttl %s must be positive", ttl)
	}
	caCert, err := parseCertPEM(caCertPEM)
	if err != nil {
		return nil, fmt.Errorf("sign worker certificate: CA certificate: %w", err)
	}
	caKey, err := parsePrivateKeyPEM(caKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("sign worker certificate: CA key: %w", err)
	}
	if !publicKeysEqual(caCert.PublicKey, caKey.Public()) {
		return nil, errors.New("sign worker certificate: CA key does not match the CA certificate")
	}
	now := time.Now()
	if now.After(caCert.NotAfter) {
		return nil, fmt.Errorf("sign worker certificate: CA certificate expired at %s", caCert.NotAfter.Format(time.RFC3339))
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("sign worker certificate: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: nodeName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IPAddresses:           append([]net.IP(nil), ips...),
	}
	if tmpl.NotAfter.After(caCert.NotAfter) {
		tmpl.NotAfter = caCert.NotAfter
	}
	if net.ParseIP(nodeName) == nil {
		tmpl.DNSNames = []string{nodeName}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign worker certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
