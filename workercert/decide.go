// Package workercert decides who gets a worker's Raft peer certificate. A worker
// asks through the Kubernetes CSR API with SignerName; the raftvip leader, which
// holds the cluster CA, signs only what Decide approves, with the worker profile:
// no control-plane Organization, so the certificate can never make a node a voter.
package workercert

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/raftvip/raftvip/raftstore"
)

// SignerName is the spec.signerName of raftvip worker CSRs. Kubernetes' own
// signers ignore it, so only the raftvip leader ever answers these requests.
const SignerName = "raftvip.io/worker"

// ServiceAccountName is the ServiceAccount of the worker DaemonSet; only its
// tokens (and the node's own kubelet credentials) may ask for a certificate.
const ServiceAccountName = "raftvip-worker"

// Extra keys the API server records for a ServiceAccount token bound to a Pod:
// the node the Pod runs on. They are what ties a DaemonSet pod's request to its node.
const (
	ExtraNodeName = "authentication.kubernetes.io/node-name"
	ExtraNodeUID  = "authentication.kubernetes.io/node-uid"
)

// Key usages (certificates.k8s.io spelling) of a worker certificate. Every peer
// both dials and accepts, so both authentication usages are required.
const (
	UsageDigitalSignature = "digital signature"
	UsageKeyEncipherment  = "key encipherment"
	UsageServerAuth       = "server auth"
	UsageClientAuth       = "client auth"
)

// Usages is what a worker asks for.
var Usages = []string{UsageDigitalSignature, UsageServerAuth, UsageClientAuth}

// minRSABits and minECBits are the weakest keys accepted.
const (
	minRSABits = 2048
	minECBits  = 256
)

// Request is what Decide reads of a CertificateSigningRequest object. The API
// server fills Username, Groups and Extra from the requester's credentials, so
// they cannot be forged by the requester.
type Request struct {
	SignerName string
	Username   string
	Groups     []string
	Extra      map[string][]string
	Usages     []string
	PEM        []byte
}

// Node is what Decide needs of the Node object the certificate is for.
type Node struct {
	UID string
	// Addresses are the Node's status addresses; IP SANs must be among them.
	Addresses []net.IP
}

// Facts are what the leader knows besides the request.
type Facts struct {
	// Namespace is where the worker ServiceAccount lives (the agent's namespace).
	Namespace string
	// Node looks a Node up by name: found false when it does not exist. An
	// error (the API server did not answer) makes the decision Retry.
	Node func(name string) (n Node, found bool, err error)
	// Voter reports whether name is a voter in the Raft configuration: a worker
	// certificate for a voter's name is refused.
	Voter func(name string) bool
}

// Verdict is what the leader does with a request.
type Verdict int

// The verdicts.
const (
	// Ignore: not a raftvip worker request; another signer's business.
	Ignore Verdict = iota
	// Retry: the facts could not be read; decide again later.
	Retry
	// Deny: refuse, with Reason in the Denied condition.
	Deny
	// Approve: approve and sign with the worker profile.
	Approve
)

func (v Verdict) String() string {
	return [...]string{"ignore", "retry", "deny", "approve"}[v]
}

// Decision is Decide's answer. For Approve, NodeName, IPs and Request are what
// the certificate is issued for.
type Decision struct {
	Verdict  Verdict
	Reason   string
	NodeName string
	IPs      []net.IP
	Request  *x509.CertificateRequest
}

func deny(format string, args ...any) Decision {
	return Decision{Verdict: Deny, Reason: fmt.Sprintf(format, args...)}
}

// Decide approves a request only when it is for raftvip's signer, the requester
// is bound to one node (a worker-ServiceAccount token bound to a Pod on it, or
// the node's kubelet identity), the CSR names exactly that node and nothing
// else, asks for no Organization, uses a strong key and both authentication
// usages, the Node exists (with the UID the token was bound to), and the name
// is not a voter's.
func Decide(r Request, f Facts) Decision {
	if r.SignerName != SignerName {
		return Decision{Verdict: Ignore, Reason: fmt.Sprintf("signer %q is not %q", r.SignerName, SignerName)}
	}
	bound, boundUID, err := requesterNode(r, f.Namespace)
	if err != nil {
		return deny("%v", err)
	}
	if reason := checkUsages(r.Usages); reason != "" {
		return deny("%s", reason)
	}
	csr, err := parseRequest(r.PEM)
	if err != nil {
		return deny("%v", err)
	}
	name := csr.Subject.CommonName
	if name != bound {
		return deny("CSR is for %q but the requester is bound to node %q", name, bound)
	}
	if len(csr.Subject.Organization) > 0 {
		return deny("CSR asks for Organization %q; worker certificates carry none (%s marks control-plane certificates)", csr.Subject.Organization, raftstore.ControlPlaneOrganization)
	}
	if reason := checkKey(csr.PublicKey); reason != "" {
		return deny("%s", reason)
	}
	if len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return deny("CSR asks for e-mail or URI SANs; a worker certificate names only its node")
	}
	for _, d := range csr.DNSNames {
		if d != name {
			return deny("CSR asks for DNS name %q; only the node name %q is allowed", d, name)
		}
	}
	node, found, err := f.Node(name)
	if err != nil {
		return Decision{Verdict: Retry, Reason: fmt.Sprintf("look up Node %q: %v", name, err)}
	}
	if !found {
		return deny("Node %q does not exist", name)
	}
	if boundUID != "" && node.UID != boundUID {
		return deny("Node %q has UID %s but the requester's token is bound to UID %s (the Node was replaced)", name, node.UID, boundUID)
	}
	for _, ip := range csr.IPAddresses {
		if !slices.ContainsFunc(node.Addresses, ip.Equal) {
			return deny("CSR asks for IP %s, which is not an address of Node %q", ip, name)
		}
	}
	if f.Voter(name) {
		return deny("%q is a voter in the raft configuration; a worker certificate for its name is refused", name)
	}
	return Decision{Verdict: Approve, Reason: fmt.Sprintf("Node %q exists and the requester is bound to it", name),
		NodeName: name, IPs: csr.IPAddresses, Request: csr}
}

// requesterNode is the node the requester is bound to, and its UID when known.
func requesterNode(r Request, namespace string) (string, string, error) {
	if name, ok := strings.CutPrefix(r.Username, "system:node:"); ok && slices.Contains(r.Groups, "system:nodes") && name != "" {
		return name, "", nil
	}
	sa := "system:serviceaccount:" + namespace + ":" + ServiceAccountName
	if r.Username != sa {
		return "", "", fmt.Errorf("requester %q is neither %s nor a node (system:node:NAME)", r.Username, sa)
	}
	names := r.Extra[ExtraNodeName]
	if len(names) != 1 || names[0] == "" {
		return "", "", fmt.Errorf("requester %s has a token bound to no node; use the projected token of a Pod (the DaemonSet's)", sa)
	}
	var uid string
	if uids := r.Extra[ExtraNodeUID]; len(uids) == 1 {
		uid = uids[0]
	}
	return names[0], uid, nil
}

// checkUsages requires both authentication usages and nothing beyond a TLS key's.
func checkUsages(usages []string) string {
	allowed := []string{UsageDigitalSignature, UsageKeyEncipherment, UsageServerAuth, UsageClientAuth}
	for _, u := range usages {
		if !slices.Contains(allowed, u) {
			return fmt.Sprintf("usage %q is not allowed; want %q", u, Usages)
		}
	}
	if !slices.Contains(usages, UsageServerAuth) || !slices.Contains(usages, UsageClientAuth) {
		return fmt.Sprintf("usages %q lack %q or %q: every raft peer both dials and accepts", usages, UsageServerAuth, UsageClientAuth)
	}
	return ""
}

func parseRequest(b []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("spec.request is not a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("spec.request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("spec.request: signature: %w", err)
	}
	return csr, nil
}

// checkKey refuses keys too weak for a certificate that authenticates Raft traffic.
func checkKey(pub any) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if bits := k.Curve.Params().BitSize; bits < minECBits {
			return fmt.Sprintf("ECDSA key on a %d-bit curve is too weak; want at least P-256", bits)
		}
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < minRSABits {
			return fmt.Sprintf("RSA key of %d bits is too weak; want at least %d", bits, minRSABits)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Sprintf("key type %T is not supported; use ECDSA P-256", pub)
	}
	return ""
}
