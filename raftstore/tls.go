package raftstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// clockSkew back-dates issued certificates so a peer whose clock runs a
// little behind ours accepts them at once.
const clockSkew = 5 * time.Minute

// IssuePeerCert issues this node's Raft peer certificate from a CA (for
// example the kubeadm cluster CA), so operators need not distribute one per
// node. The key is ECDSA P-256 (fast handshakes), CN and a DNS SAN are the
// node name, the IPs become IP SANs, and the certificate is good for both
// server and client authentication because every peer both dials and
// accepts. Validity is capped at the CA's own expiry. Only holders of the CA
// key can run this, so the certificate carries ControlPlaneOrganization: it
// marks a node that may become a voter.
func IssuePeerCert(caCertPEM, caKeyPEM []byte, nodeName string, ips []net.IP, ttl time.Duration) (tls.Certificate, error) {
	if nodeName == "" {
		return tls.Certificate{}, errors.New("issue peer certificate: empty node name")
	}
	if ttl <= 0 {
		return tls.Certificate{}, fmt.Errorf("issue peer certificate: ttl %s must be positive", ttl)
	}
	caCert, err := parseCertPEM(caCertPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue peer certificate: CA certificate: %w", err)
	}
	if !caCert.IsCA {
		return tls.Certificate{}, fmt.Errorf("issue peer certificate: %q is not a CA certificate", caCert.Subject.CommonName)
	}
	caKey, err := parsePrivateKeyPEM(caKeyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue peer certificate: CA key: %w", err)
	}
	if !publicKeysEqual(caCert.PublicKey, caKey.Public()) {
		return tls.Certificate{}, errors.New("issue peer certificate: CA key does not match the CA certificate")
	}
	now := time.Now()
	if now.After(caCert.NotAfter) {
		return tls.Certificate{}, fmt.Errorf("issue peer certificate: CA certificate expired at %s", caCert.NotAfter.Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue peer certificate: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue peer certificate: serial: %w", err)
	}
	notAfter := now.Add(ttl)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: nodeName, Organization: []string{ControlPlaneOrganization}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IPAddresses:           append([]net.IP(nil), ips...),
	}
	if ip := net.ParseIP(nodeName); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else {
		tmpl.DNSNames = []string{nodeName}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue peer certificate: sign: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue peer certificate: parse issued certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no PEM CERTIFICATE block")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// parsePrivateKeyPEM accepts the key encodings CAs are found in: PKCS#1 RSA
// (kubeadm), SEC 1 EC and PKCS#8.
func parsePrivateKeyPEM(b []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no PEM private key block")
		}
		var key any
		var err error
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", block.Type, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s: key type %T cannot sign", block.Type, key)
		}
		return s, nil
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// LoadCAPool reads the PEM CA bundle that peer certificates must chain to.
// Errors name the file, because they end up as the one line the agent
// prints before exiting.
func LoadCAPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA bundle %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA bundle %s: certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("CA bundle %s: no PEM CERTIFICATE blocks", path)
	}
	return pool, nil
}

// MutualTLSConfig returns the TLS configuration both sides of every Raft
// connection use: TLS 1.3 only, our certificate presented both ways, and
// the peer's certificate required and verified against ca.
//
// Peers dial each other by IP and node names need not resolve, so clients
// do not match the server name. Instead VerifyConnection checks the chain to
// ca and that the peer certificate allows both server and client
// authentication, on whichever side we are; a certificate from another CA
// fails the handshake in both directions. Requiring both usages also keeps
// out the other certificates a kubeadm cluster CA signs (kubelet and admin
// client certificates, the API server's serving certificate): each carries
// only one of them.
func MutualTLSConfig(cert tls.Certificate, ca *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca,
		RootCAs:      ca,
		// The standard verification would insist on a host name match; the
		// chain and usages are verified in VerifyConnection instead.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPeer(cs.PeerCertificates, ca)
		},
	}
}

// verifyPeer checks a peer's certificate chain against ca, for both
// authentication usages.
func verifyPeer(chain []*x509.Certificate, ca *x509.CertPool) error {
	if len(chain) == 0 {
		return errors.New("raft peer presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		_, err := chain[0].Verify(x509.VerifyOptions{
			Roots:         ca,
			Intermediates: inter,
			KeyUsages:     []x509.ExtKeyUsage{usage},
		})
		if err != nil {
			return fmt.Errorf("raft peer certificate %q: %w", chain[0].Subject.CommonName, err)
		}
	}
	return nil
}
