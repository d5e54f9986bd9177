package raftstore

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// logBuffer collects every node's log lines, for assertions on what was logged.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the logged lines containing every one of subs.
func (b *logBuffer) lines(subs ...string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		all := l != ""
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all {
			out = append(out, l)
		}
	}
	return out
}

// count returns how often s occurs in the log.
func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

// newLoggedCluster is newCluster with every node logging into logs.
func newLoggedCluster(t *testing.T, ca *testCA, logs *logBuffer) *cluster {
	t.Helper()
	c := &cluster{t: t, cfgs: map[string]Config{}, nodes: map[string]*Node{}}
	var peers []Peer
	for i := 1; i <= 3; i++ {
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i), Address: freeAddr(t)})
	}
	base := t.TempDir()
	logger := slog.New(slog.NewTextHandler(logs, nil))
	for _, p := range peers {
		c.cfgs[p.ID] = Config{NodeID: p.ID, BindAddr: p.Address, DataDir: filepath.Join(base, p.ID),
			Peers: peers, Timeouts: calmTimeouts(), Logger: logger, TLS: ca.tlsConfig(t, p.ID)}
		c.order = append(c.order, p.ID)
	}
	t.Cleanup(c.stopAll)
	for _, id := range c.order {
		c.start(id)
	}
	return c
}

// rawStream is a raft.StreamLayer that dials the Raft port the way a raftvip
// node does (TLS with cfg, then the connRaft byte) but serves nothing: the
// attacker's side of hashicorp/raft's NetworkTransport.
type rawStream struct {
	net.Listener
	cfg *tls.Config
}

func newRawStream(t *testing.T, cfg *tls.Config) *rawStream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &rawStream{Listener: ln, cfg: cfg}
}

func (s *rawStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), s.cfg)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{connRaft}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// attacker sends raw Raft RPCs with a chosen certificate and claimed ID.
type attacker struct {
	trans *raft.NetworkTransport
	hdr   raft.RPCHeader
}

func newAttacker(t *testing.T, cert tls.Certificate, ca *testCA, claim string) *attacker {
	t.Helper()
	s := newRawStream(t, MutualTLSConfig(cert, ca.pool))
	trans := raft.NewNetworkTransport(s, 1, 2*time.Second, io.Discard)
	t.Cleanup(func() { trans.Close() })
	return &attacker{trans: trans, hdr: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(claim), Addr: []byte(s.Addr().String())}}
}

// rpcs sends each of the four dangerous RPCs to target and returns the RPC
// names with the error each got.
func (a *attacker) rpcs(target *Node, term uint64) map[string]error {
	id, addr := raft.ServerID(target.id), target.trans.LocalAddr()
	out := map[string]error{}
	out["RequestVote"] = a.trans.RequestVote(id, addr, &raft.RequestVoteRequest{
		RPCHeader: a.hdr, Term: term + 10, LastLogIndex: 1 << 40, LastLogTerm: term + 10, LeadershipTransfer: true,
	}, &raft.RequestVoteResponse{})
	out["TimeoutNow"] = a.trans.TimeoutNow(id, addr, &raft.TimeoutNowRequest{RPCHeader: a.hdr}, &raft.TimeoutNowResponse{})
	pools, _ := Encode(SetPools{Pools: []Pool{{Name: "evil", Ranges: []string{"203.0.113.0/24"}, AutoAssign: true}}})
	out["AppendEntries"] = a.trans.AppendEntries(id, addr, &raft.AppendEntriesRequest{
		RPCHeader: a.hdr, Term: term + 10, PrevLogEntry: 0, PrevLogTerm: 0, LeaderCommitIndex: 1 << 40,
		Entries: []*raft.Log{{Index: 1, Term: term + 10, Type: raft.LogCommand, Data: pools}},
	}, &raft.AppendEntriesResponse{})
	snap := []byte("not a snapshot")
	out["InstallSnapshot"] = a.trans.InstallSnapshot(id, addr, &raft.InstallSnapshotRequest{
		RPCHeader: a.hdr, SnapshotVersion: raft.SnapshotVersionMax, Term: term + 10, LastLogIndex: 1 << 40, LastLogTerm: term + 10,
		Size: int64(len(snap)), Configuration: nil, ConfigurationIndex: 1,
	}, &raft.InstallSnapshotResponse{}, bytes.NewReader(snap))
	return out
}

// unchanged fails t unless the cluster still has leader at term with want on
// every node.
func unchanged(t *testing.T, c *cluster, leader *Node, term uint64, want State) {
	t.Helper()
	// Give a vote or a timeout that got through the time to take effect.
	time.Sleep(2 * calmTimeouts().Election)
	if got := c.leader(); got.id != leader.id {
		t.Fatalf("leader changed from %s to %s", leader.id, got.id)
	}
	for _, n := range c.running() {
		if got := n.raft.CurrentTerm(); got != term {
			t.Fatalf("%s: term changed from %d to %d", n.id, term, got)
		}
		if !statesEqual(n.State(), want) {
			t.Fatalf("%s: state changed: %#v", n.id, n.State())
		}
	}
}

func seeded(t *testing.T, c *cluster) (*Node, uint64, State) {
	t.Helper()
	want := c.apply(SetPools{Pools: []Pool{{Name: "default", Ranges: []string{"198.51.100.0/24"}, AutoAssign: true}}}).State()
	c.converged(c.running(), want)
	leader := c.leader()
	return leader, leader.raft.CurrentTerm(), want
}

func TestWorkerCannotSpeakRaft(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	logs := &logBuffer{}
	c := newLoggedCluster(t, ca, logs)
	leader, term, want := seeded(t, c)
	// The worker is a member, as a nonvoter: joined the ordinary way.
	if err := leader.AddNonvoter("w1", freeAddr(t)); err != nil {
		t.Fatal(err)
	}
	a := newAttacker(t, ca.workerCert(t, "w1"), ca, "w1")
	for _, target := range c.running() {
		for rpc, err := range a.rpcs(target, term) {
			if err == nil {
				t.Errorf("%s from worker w1 to %s: accepted", rpc, target.id)
			}
		}
	}
	unchanged(t, c, leader, term, want)
	for _, rpc := range []string{"RequestVote", "TimeoutNow", "AppendEntries", "InstallSnapshot"} {
		got := logs.lines("refused raft rpc", "peer=w1", "rpc="+rpc)
		if len(got) < len(c.running()) {
			t.Errorf("%s: %d refusals logged with peer=w1, want one per node (%d):\n%s", rpc, len(got), len(c.running()), strings.Join(got, "\n"))
		}
	}
}

func TestRPCClaimingAnotherIDIsRefused(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	for _, tc := range []struct {
		name  string
		cert  func(*testCA) tls.Certificate
		claim string
		peer  string
	}{
		// A worker certificate claiming to be a voter.
		{"worker as voter", func(ca *testCA) tls.Certificate { return ca.workerCert(t, "w1") }, "n1", "w1"},
		// A voter's own certificate sending RPCs in another voter's name: the
		// connection is allowed, every request is checked.
		{"voter as another voter", func(ca *testCA) tls.Certificate { return ca.cert(t, "n3") }, "n1", "n3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logBuffer{}
			c := newLoggedCluster(t, ca, logs)
			leader, term, want := seeded(t, c)
			a := newAttacker(t, tc.cert(ca), ca, tc.claim)
			for rpc, err := range a.rpcs(leader, term) {
				if err == nil {
					t.Errorf("%s from %s claiming %s: accepted", rpc, tc.peer, tc.claim)
				}
				if got := logs.lines("refused raft rpc", "peer="+tc.peer, "rpc="+rpc); len(got) == 0 {
					t.Errorf("%s from %s: no refusal logged", rpc, tc.peer)
				}
			}
			unchanged(t, c, leader, term, want)
		})
	}
}

func TestForeignAndExpiredCertificatesCannotSpeakRaft(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	other := newTestCA(t, "other-ca")
	c := newLoggedCluster(t, ca, &logBuffer{})
	leader, term, want := seeded(t, c)
	for _, tc := range []struct {
		name string
		cert tls.Certificate
	}{
		{"another CA", other.cert(t, "n1")},
		{"expired", ca.issueCert(t, "n1", []string{ControlPlaneOrganization}, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The attacker trusts the cluster CA, so only the server's
			// verification of the client certificate stands in the way.
			a := newAttacker(t, tc.cert, ca, "n1")
			for rpc, err := range a.rpcs(leader, term) {
				if err == nil {
					t.Errorf("%s with a certificate from %s: accepted", rpc, tc.name)
				}
			}
		})
	}
	unchanged(t, c, leader, term, want)
}

func TestDialRefusesCertificateOfAnotherServer(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	server := newTestStream(t, ca.tlsConfig(t, "impostor"))
	go func() {
		for {
			c, err := server.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	client := newTestStream(t, ca.tlsConfig(t, "n1"))
	m := newMuxLayer(client, func(c net.Conn) { c.Close() }, testLogger())
	t.Cleanup(func() { m.Close() })
	addr := server.Addr().String()
	for _, tc := range []struct {
		name       string
		configured string
		ok         bool
	}{
		{"configured as another server", "n2", false},
		{"configured as this server", "impostor", true},
		{"address not configured", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := func(a string) (string, bool) { return tc.configured, a == addr && tc.configured != "" }
			m.serverAt.Store(&at)
			c, err := m.Dial(raft.ServerAddress(addr), time.Second)
			if tc.ok {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("dial accepted a certificate for another server")
			}
			if !strings.Contains(err.Error(), `certificate is for "impostor"`) {
				t.Fatalf("dial error does not name the certificate: %v", err)
			}
		})
	}
}

func TestForwardedRequestsAreLimitedPerPeer(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	logs := &logBuffer{}
	c := newLoggedCluster(t, ca, logs)
	leader := c.leader()
	var f, other *Node
	for _, n := range c.running() {
		switch {
		case n == leader:
		case f == nil:
			f = n
		default:
			other = n
		}
	}
	// A bucket that never refills within the test, so the count is exact.
	leader.fwdLimit = newPeerLimiter(1e-9, 3, forwardLimiterMax)
	addr := string(leader.trans.LocalAddr())
	for i := 0; i < 3; i++ {
		if _, err := f.requestResp(addr, forwardRequest{Op: "read-index"}, 5*time.Second); err != nil {
			t.Fatalf("request %d within the burst: %v", i, err)
		}
	}
	if _, err := f.requestResp(addr, forwardRequest{Op: "read-index"}, 5*time.Second); err == nil || !strings.Contains(err.Error(), "rate limit") {
		t.Fatalf("request past the burst: %v", err)
	}
	if got := logs.lines("rate limit", "peer="+f.id); len(got) != 1 {
		t.Fatalf("want one rate-limit line naming %s, got %q", f.id, got)
	}
	if _, err := other.requestResp(addr, forwardRequest{Op: "read-index"}, 5*time.Second); err != nil {
		t.Fatalf("another peer is limited by %s's requests: %v", f.id, err)
	}

	big := forwardRequest{Op: "apply", Command: make([]byte, maxForwardRequest)}
	if _, err := other.requestResp(addr, big, 5*time.Second); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversized forwarded request: %v", err)
	}
}
