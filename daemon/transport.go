package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// defaultPeerCertLifetime is the lifetime of a peer certificate the node issues
// itself from the cluster CA. It is renewed at two thirds of that, so a node
// whose renewals fail has more than two days to be noticed (the expiry is in
// /metrics and `raftvip status`) before new handshakes fail.
const defaultPeerCertLifetime = 7 * 24 * time.Hour

// minPeerCertLifetime keeps a renewal (at two thirds of the lifetime) well
// clear of the time a handshake and a scheduling stall take. X.509 times have
// whole seconds, so a certificate issued for 3s lives 2-3s.
const minPeerCertLifetime = 3 * time.Second

// certFilePoll is how often --tls-cert/--tls-key are checked for changes. A
// replaced pair is in use within two polls: long before any sensible
// certificate lifetime runs out, and a stat of two files costs nothing.
const certFilePoll = 10 * time.Second

// transportTLS builds the mutual TLS configuration for Raft traffic and the
// source that keeps its certificate fresh, or nil, nil for --insecure-transport.
// With --tls-ca-key the node issues its own peer certificate for its node name
// and advertise address and renews it before it expires; with --tls-cert the
// files are re-read when they change; with --tls-csr the leader signs it through
// a Kubernetes CSR, which may wait for a leader until ctx ends. The source does
// nothing until its Run.
func (p *Parsed) transportTLS(ctx context.Context, log *slog.Logger) (*tls.Config, *raftstore.CertSource, error) {
	if p.InsecureTransport {
		return nil, nil, nil
	}
	ca, err := raftstore.LoadCAPool(p.TLSCACert)
	if err != nil {
		return nil, nil, &FlagError{Flag: "tls-ca-cert", Value: p.TLSCACert, Err: err}
	}
	var src *raftstore.CertSource
	if p.TLSCAKey != "" {
		caPEM, err := os.ReadFile(p.TLSCACert)
		if err != nil {
			return nil, nil, flagErr("tls-ca-cert", p.TLSCACert, "%v", err)
		}
		keyPEM, err := os.ReadFile(p.TLSCAKey)
		if err != nil {
			return nil, nil, flagErr("tls-ca-key", p.TLSCAKey, "%v", err)
		}
		lifetime := p.PeerCertLifetime
		if lifetime == 0 {
			lifetime = defaultPeerCertLifetime
		}
		ips := []net.IP{p.Advertise.AsSlice()}
		// The CA is read once: renewals never depend on the files staying put,
		// and a CA replaced on disk (which peers would not trust yet) is not used
		// before a restart.
		src, err = raftstore.NewIssuedCertSource(func() (tls.Certificate, error) {
			return raftstore.IssuePeerCert(caPEM, keyPEM, p.NodeName, ips, lifetime)
		}, log)
		if err != nil {
			return nil, nil, flagErr("tls-ca-key", p.TLSCAKey, "issue peer certificate: %v", err)
		}
	} else if p.TLSCSR {
		src, err = p.csrCertSource(ctx, log)
		if err != nil {
			return nil, nil, err
		}
	} else {
		src, err = raftstore.NewFileCertSource(p.TLSCert, p.TLSKey, certFilePoll, log)
		if err != nil {
			return nil, nil, flagErr("tls-cert", p.TLSCert, "%v", err)
		}
		if err := checkOwnCert(src.Leaf(), p.NodeName, p.IsVoter); err != nil {
			return nil, nil, flagErr("tls-cert", p.TLSCert, "%v", err)
		}
	}
	return src.TLSConfig(ca), src, nil
}

// checkOwnCert refuses a --tls-cert that peers would refuse later, at start
// instead of at the first handshake: its CommonName must be this node's name (the
// transport checks every RPC's sender against it), and a control-plane node's must
// carry ControlPlaneOrganization, without which nodes that know no configuration
// yet refuse it as a leader.
func checkOwnCert(leaf *x509.Certificate, nodeName string, voter bool) error {
	if leaf.Subject.CommonName != nodeName {
		return fmt.Errorf("certificate is for %q but --node-name is %q: peers check every Raft message against the certificate's name", leaf.Subject.CommonName, nodeName)
	}
	if voter && !slices.Contains(leaf.Subject.Organization, raftstore.ControlPlaneOrganization) {
		return fmt.Errorf("certificate of control-plane node %q has no Organization %q: issue it with that O=, or give --tls-ca-key", nodeName, raftstore.ControlPlaneOrganization)
	}
	return nil
}
