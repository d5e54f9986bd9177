package daemon

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// peerCertTTL is the lifetime of a peer certificate issued from the cluster CA at start.
// Short, because the CA key is at hand to issue a new one on every restart.
const peerCertTTL = 7 * 24 * time.Hour

// transportTLS builds the mutual TLS configuration for Raft traffic, or nil for
// --insecure-transport. With --tls-ca-key the node issues its own peer certificate
// for its node name and advertise address.
func (p *Parsed) transportTLS() (*tls.Config, error) {
	if p.InsecureTransport {
		return nil, nil
	}
	ca, err := raftstore.LoadCAPool(p.TLSCACert)
	if err != nil {
		return nil, &FlagError{Flag: "tls-ca-cert", Value: p.TLSCACert, Err: err}
	}
	var cert tls.Certificate
	if p.TLSCAKey != "" {
		caPEM, err := os.ReadFile(p.TLSCACert)
		if err != nil {
			return nil, flagErr("tls-ca-cert", p.TLSCACert, "%v", err)
		}
		keyPEM, err := os.ReadFile(p.TLSCAKey)
		if err != nil {
			return nil, flagErr("tls-ca-key", p.TLSCAKey, "%v", err)
		}
		cert, err = raftstore.IssuePeerCert(caPEM, keyPEM, p.NodeName, []net.IP{p.Advertise.AsSlice()}, peerCertTTL)
		if err != nil {
			return nil, flagErr("tls-ca-key", p.TLSCAKey, "issue peer certificate: %v", err)
		}
	} else {
		cert, err = tls.LoadX509KeyPair(p.TLSCert, p.TLSKey)
		if err != nil {
			return nil, flagErr("tls-cert", p.TLSCert, "load with --tls-key %q: %v", p.TLSKey, err)
		}
	}
	if len(cert.Certificate) == 0 {
		return nil, fmt.Errorf("peer certificate is empty")
	}
	return raftstore.MutualTLSConfig(cert, ca), nil
}
