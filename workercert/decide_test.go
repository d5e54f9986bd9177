package workercert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/raftvip/raftvip/raftstore"
)

const sa = "system:serviceaccount:kube-system:raftvip-worker"

// csrPEM signs a CSR template with key.
func csrPEM(t *testing.T, key crypto.Signer, tmpl x509.CertificateRequest) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func ecKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// facts knows Node w1 (UID u1, 10.0.0.21) and the voter cp1.
func facts() Facts {
	return Facts{
		Namespace: "kube-system",
		Node: func(name string) (Node, bool, error) {
			switch name {
			case "w1":
				return Node{UID: "u1", Addresses: []net.IP{net.ParseIP("10.0.0.21")}}, true, nil
			case "cp1":
				return Node{UID: "c1"}, true, nil
			case "flaky":
				return Node{}, false, errors.New("connection refused")
			}
			return Node{}, false, nil
		},
		Voter: func(name string) bool { return name == "cp1" },
	}
}

func TestDecide(t *testing.T) {
	p256 := ecKey(t, elliptic.P256())
	good := csrPEM(t, p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "w1"}, DNSNames: []string{"w1"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.21")}})
	rsaWeak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bound := func(node string, uid ...string) map[string][]string {
		m := map[string][]string{ExtraNodeName: {node}, "authentication.kubernetes.io/pod-name": {"raftvip-worker-abcde"}}
		if len(uid) > 0 {
			m[ExtraNodeUID] = uid
		}
		return m
	}
	base := func(change func(*Request)) Request {
		r := Request{SignerName: SignerName, Username: sa, Groups: []string{"system:serviceaccounts", "system:authenticated"},
			Extra: bound("w1", "u1"), Usages: Usages, PEM: good}
		if change != nil {
			change(&r)
		}
		return r
	}
	withCSR := func(key crypto.Signer, tmpl x509.CertificateRequest) func(*Request) {
		b := csrPEM(t, key, tmpl)
		return func(r *Request) { r.PEM = b }
	}
	u, _ := url.Parse("spiffe://cluster/w1")
	for _, tc := range []struct {
		name   string
		req    Request
		f      func(*Facts)
		want   Verdict
		reason string
	}{
		{name: "daemonset pod on its node", req: base(nil), want: Approve},
		{name: "token without node UID", req: base(func(r *Request) { r.Extra = bound("w1") }), want: Approve},
		{name: "kubelet identity", req: base(func(r *Request) { r.Username, r.Groups, r.Extra = "system:node:w1", []string{"system:nodes"}, nil }), want: Approve},
		{name: "ed25519 key", req: base(withCSR(edKey, x509.CertificateRequest{Subject: pkix.Name{CommonName: "w1"}})), want: Approve},
		{name: "with key encipherment", req: base(func(r *Request) { r.Usages = append([]string{UsageKeyEncipherment}, Usages...) }), want: Approve},
		{name: "wrong signer", req: base(func(r *Request) { r.SignerName = "kubernetes.io/kube-apiserver-client" }), want: Ignore},
		{name: "node missing", req: base(withCSR(p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "ghost"}})),
			f: func(f *Facts) {}, want: Deny, reason: "bound to node"},
		{name: "node missing, name matches requester", req: base(func(r *Request) {
			r.Extra = bound("ghost")
			r.PEM = csrPEM(t, p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "ghost"}})
		}), want: Deny, reason: `Node "ghost" does not exist`},
		{name: "name mismatch", req: base(func(r *Request) { r.Extra = bound("w2") }), want: Deny, reason: `CSR is for "w1" but the requester is bound to node "w2"`},
		{name: "kubelet of another node", req: base(func(r *Request) { r.Username, r.Groups, r.Extra = "system:node:w2", []string{"system:nodes"}, nil }),
			want: Deny, reason: `bound to node "w2"`},
		{name: "node name without nodes group", req: base(func(r *Request) { r.Username, r.Groups, r.Extra = "system:node:w1", nil, nil }),
			want: Deny, reason: "neither"},
		{name: "other service account", req: base(func(r *Request) { r.Username = "system:serviceaccount:default:builder" }), want: Deny, reason: "neither"},
		{name: "unbound token", req: base(func(r *Request) { r.Extra = nil }), want: Deny, reason: "bound to no node"},
		{name: "node replaced", req: base(func(r *Request) { r.Extra = bound("w1", "old-uid") }), want: Deny, reason: "the Node was replaced"},
		{name: "wrong usages: client only", req: base(func(r *Request) { r.Usages = []string{UsageDigitalSignature, UsageClientAuth} }), want: Deny, reason: "lack"},
		{name: "wrong usages: code signing", req: base(func(r *Request) { r.Usages = append(Usages, "code signing") }), want: Deny, reason: `usage "code signing" is not allowed`},
		{name: "key too weak: RSA 1024", req: base(withCSR(rsaWeak, x509.CertificateRequest{Subject: pkix.Name{CommonName: "w1"}})), want: Deny, reason: "RSA key of 1024 bits is too weak"},
		{name: "key too weak: P-224", req: base(withCSR(ecKey(t, elliptic.P224()), x509.CertificateRequest{Subject: pkix.Name{CommonName: "w1"}})), want: Deny, reason: "224-bit curve is too weak"},
		{name: "control-plane organization", req: base(withCSR(p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "w1", Organization: []string{raftstore.ControlPlaneOrganization}}})),
			want: Deny, reason: "Organization"},
		{name: "extra DNS name", req: base(withCSR(p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "w1"}, DNSNames: []string{"w1", "kubernetes.default"}})),
			want: Deny, reason: `DNS name "kubernetes.default"`},
		{name: "foreign IP", req: base(withCSR(p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "w1"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.11")}})),
			want: Deny, reason: "IP 10.0.0.11, which is not an address"},
		{name: "URI SAN", req: base(withCSR(p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "w1"}, URIs: []*url.URL{u}})), want: Deny, reason: "URI"},
		{name: "voter's name", req: base(func(r *Request) {
			r.Extra = bound("cp1")
			r.PEM = csrPEM(t, p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "cp1"}})
		}), want: Deny, reason: "is a voter"},
		{name: "not a CSR", req: base(func(r *Request) { r.PEM = []byte("hello") }), want: Deny, reason: "not a PEM CERTIFICATE REQUEST"},
		{name: "bad signature", req: base(func(r *Request) {
			block, _ := pem.Decode(good)
			der := append([]byte(nil), block.Bytes...)
			der[len(der)-5] ^= 0xff
			r.PEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
		}), want: Deny, reason: "spec.request"},
		{name: "API server down", req: base(func(r *Request) {
			r.Extra = bound("flaky")
			r.PEM = csrPEM(t, p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "flaky"}})
		}), want: Retry, reason: "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.req, facts())
			if d.Verdict != tc.want {
				t.Fatalf("verdict %s (%s), want %s", d.Verdict, d.Reason, tc.want)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("reason %q lacks %q", d.Reason, tc.reason)
			}
			if tc.want == Approve && (d.NodeName != "w1" || d.Request == nil) {
				t.Errorf("approved for %q with request %v", d.NodeName, d.Request != nil)
			}
		})
	}
}

func TestDecideOtherNamespace(t *testing.T) {
	k := ecKey(t, elliptic.P256())
	r := Request{SignerName: SignerName, Username: "system:serviceaccount:raftvip:raftvip-worker", Extra: map[string][]string{ExtraNodeName: {"w1"}},
		Usages: Usages, PEM: csrPEM(t, k, x509.CertificateRequest{Subject: pkix.Name{CommonName: "w1"}})}
	f := facts()
	if d := Decide(r, f); d.Verdict != Deny {
		t.Fatalf("a worker ServiceAccount outside the agent's namespace got %s", d.Verdict)
	}
	f.Namespace = "raftvip"
	if d := Decide(r, f); d.Verdict != Approve {
		t.Fatalf("the worker ServiceAccount of the agent's namespace got %s: %s", d.Verdict, d.Reason)
	}
}
