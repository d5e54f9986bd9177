package raftstore

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
)

// ControlPlaneOrganization is the Organization that marks a peer certificate as a
// control-plane node's: one issued with the cluster CA key (IssuePeerCert), which
// only control-plane nodes hold. Only such nodes may be promoted to voter; any
// other certificate from the CA (a worker's) can at most be a nonvoter.
const ControlPlaneOrganization = "raftvip:control-plane"

// Identity is who an authenticated connection belongs to.
type Identity struct {
	// Name is the node name: the verified certificate's CommonName. Empty on an
	// insecure transport.
	Name string
	// ControlPlane is true when the certificate carries ControlPlaneOrganization,
	// and always on an insecure transport (where anyone can claim anything).
	ControlPlane bool
	// Authenticated is false on an insecure transport.
	Authenticated bool
}

// identityOf reads the identity of an accepted or dialled connection.
func identityOf(c net.Conn) Identity {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return Identity{ControlPlane: true}
	}
	st := tc.ConnectionState()
	if len(st.PeerCertificates) == 0 {
		return Identity{ControlPlane: true}
	}
	return certIdentity(st.PeerCertificates[0])
}

// certIdentity is the identity a verified leaf certificate names.
func certIdentity(leaf *x509.Certificate) Identity {
	return Identity{
		Name:          leaf.Subject.CommonName,
		ControlPlane:  slices.Contains(leaf.Subject.Organization, ControlPlaneOrganization),
		Authenticated: true,
	}
}
