package raftstore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestMayRaft(t *testing.T) {
	cfg := raft.Configuration{Servers: []raft.Server{
		{ID: "n1", Address: "a1", Suffrage: raft.Voter},
		{ID: "n2", Address: "a2", Suffrage: raft.Voter},
		{ID: "w1", Address: "a3", Suffrage: raft.Nonvoter},
		{ID: "s1", Address: "a4", Suffrage: raft.Staging},
	}}
	promotingW1 := func(id string) bool { return id == "w1" }
	cert := func(name string, cp bool) Identity {
		return Identity{Name: name, ControlPlane: cp, Authenticated: true}
	}
	for _, tc := range []struct {
		name      string
		id        Identity
		cfg       raft.Configuration
		promoting func(string) bool
		ok        bool
	}{
		{"voter", cert("n1", true), cfg, nil, true},
		{"voter with a worker certificate", cert("n2", false), cfg, nil, true},
		{"nonvoter", cert("w1", false), cfg, nil, false},
		{"nonvoter with a control-plane certificate", cert("w1", true), cfg, nil, false},
		{"nonvoter being promoted", cert("w1", false), cfg, promotingW1, true},
		{"other nonvoter while w1 is promoted", cert("s1", true), cfg, promotingW1, false},
		{"staging being promoted", cert("s1", true), cfg, func(string) bool { return true }, true},
		{"stranger", cert("x", true), cfg, nil, false},
		{"stranger claimed as promoting", cert("x", true), cfg, func(string) bool { return true }, false},
		{"empty name", cert("", true), cfg, nil, false},
		{"no configuration, control-plane", cert("n1", true), raft.Configuration{}, nil, true},
		{"no configuration, worker", cert("w1", false), raft.Configuration{}, nil, false},
		{"insecure transport", Identity{ControlPlane: true}, cfg, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := mayRaft(tc.id, tc.cfg, tc.promoting)
			if (err == nil) != tc.ok {
				t.Fatalf("mayRaft(%+v) = %v, want ok=%v", tc.id, err, tc.ok)
			}
		})
	}
}

func TestCheckRPCHeader(t *testing.T) {
	hdr := func(id string) raft.RPCHeader { return raft.RPCHeader{ID: []byte(id), Addr: []byte("a")} }
	for _, tc := range []struct {
		name string
		cert string
		req  raft.WithRPCHeader
		ok   bool
	}{
		{"own ID", "n1", &raft.RequestVoteRequest{RPCHeader: hdr("n1")}, true},
		{"other voter's ID", "w1", &raft.RequestVoteRequest{RPCHeader: hdr("n1")}, false},
		{"empty ID", "n1", &raft.AppendEntriesRequest{RPCHeader: hdr("")}, false},
		{"prefix of own ID", "n1", &raft.TimeoutNowRequest{RPCHeader: hdr("n")}, false},
		{"snapshot, other ID", "n2", &raft.InstallSnapshotRequest{RPCHeader: hdr("n1")}, false},
		{"insecure transport", "", &raft.RequestVoteRequest{RPCHeader: hdr("anyone")}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkRPCHeader(tc.cert, tc.req)
			if (err == nil) != tc.ok {
				t.Fatalf("checkRPCHeader(%q) = %v, want ok=%v", tc.cert, err, tc.ok)
			}
		})
	}
}

func TestServerAt(t *testing.T) {
	cfg := raft.Configuration{Servers: []raft.Server{
		{ID: "n1", Address: "a1"}, {ID: "n2", Address: "a2"}, {ID: "n3", Address: "a2"},
	}}
	for _, tc := range []struct {
		addr, want string
		ok         bool
	}{
		{"a1", "n1", true},
		{"a2", "", false}, // two servers there: nothing to check against
		{"a9", "", false},
	} {
		got, ok := serverAt(cfg, tc.addr)
		if got != tc.want || ok != tc.ok {
			t.Errorf("serverAt(%q) = %q, %v; want %q, %v", tc.addr, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRPCNames(t *testing.T) {
	for typ := uint8(0); typ <= rpcRequestPreVote; typ++ {
		req, err := newRPCRequest(typ)
		if err != nil || req == nil {
			t.Fatalf("type %d (%s): %v", typ, rpcName(typ), err)
		}
	}
	if _, err := newRPCRequest(9); err == nil {
		t.Fatal("unknown type 9 accepted")
	}
	if got := rpcName(rpcTimeoutNow); got != "TimeoutNow" {
		t.Fatalf("rpcName(TimeoutNow) = %q", got)
	}
}

// issueCert signs a peer certificate for cn with ca's key, valid from
// notBefore to notAfter, carrying org. Tests use it for certificates
// IssuePeerCert would never make: workers' (no control-plane mark) and
// expired ones.
func (ca *testCA) issueCert(t testing.TB, cn string, org []string, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	caCert, err := parseCertPEM(ca.certPEM)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := parsePrivateKeyPEM(ca.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn, Organization: org},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{cn},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// workerCert is a valid worker certificate: from the cluster CA, without the
// control-plane mark.
func (ca *testCA) workerCert(t testing.TB, cn string) tls.Certificate {
	return ca.issueCert(t, cn, nil, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
}

func TestPeerLimiter(t *testing.T) {
	l := newPeerLimiter(2, 3, 2)
	t0 := time.Unix(1000, 0)
	for i := 0; i < 3; i++ {
		if !l.allow("a", t0) {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	if l.allow("a", t0) {
		t.Fatal("request past the burst allowed")
	}
	if !l.allow("b", t0) {
		t.Fatal("another peer shares a's bucket")
	}
	if !l.allow("a", t0.Add(500*time.Millisecond)) {
		t.Fatal("a token did not refill after 1/rate seconds")
	}
	if l.allow("a", t0.Add(500*time.Millisecond)) {
		t.Fatal("more than one token refilled in 1/rate seconds")
	}
	// Past max peers, full buckets are forgotten and a new peer gets a fresh one.
	later := t0.Add(time.Hour)
	if !l.allow("c", later) {
		t.Fatal("new peer refused")
	}
	if len(l.peers) > 2 {
		t.Fatalf("limiter remembers %d peers, max 2", len(l.peers))
	}
}

func TestReadFrameMax(t *testing.T) {
	var buf bytes.Buffer
	if err := writeFrame(&buf, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := readFrameMax(bytes.NewReader(buf.Bytes()), 99); err == nil || !strings.Contains(err.Error(), "exceeds 99") {
		t.Fatalf("100-byte frame with limit 99: %v", err)
	}
	b, err := readFrameMax(bytes.NewReader(buf.Bytes()), 100)
	if err != nil || len(b) != 100 {
		t.Fatalf("100-byte frame with limit 100: %d bytes, %v", len(b), err)
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

func TestStreamLayerPendingPerSource(t *testing.T) {
	ca := newTestCA(t, "a")
	server := newTestStream(t, ca.tlsConfig(t, "server"))
	conn := func(src string) net.Conn {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return addrConn{Conn: a, remote: fakeAddr(src)}
	}
	var first []net.Conn
	for i := 0; i < maxPendingPerSource; i++ {
		c := conn("192.0.2.1:1000")
		if err := server.track(c); err != nil {
			t.Fatalf("handshake %d from one source: %v", i, err)
		}
		first = append(first, c)
	}
	err := server.track(conn("192.0.2.1:2000"))
	if err == nil || !strings.Contains(err.Error(), "from 192.0.2.1") {
		t.Fatalf("handshake past the per-source limit: %v", err)
	}
	if err := server.track(conn("192.0.2.2:1000")); err != nil {
		t.Fatalf("another source is locked out: %v", err)
	}
	server.untrack(first[0])
	if err := server.track(conn("192.0.2.1:3000")); err != nil {
		t.Fatalf("a finished handshake did not free its source's slot: %v", err)
	}
}
