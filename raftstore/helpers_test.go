package raftstore

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
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// waitTimeout bounds every wait in the integration tests. It is a liveness
// bound on a shared, noisy machine, not a performance expectation.
const waitTimeout = 30 * time.Second

// testCA is a throwaway certificate authority.
type testCA struct {
	certPEM, keyPEM []byte
	pool            *x509.CertPool
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		pool:    pool,
	}
}

func (ca *testCA) cert(t testing.TB, node string) tls.Certificate {
	t.Helper()
	c, err := IssuePeerCert(ca.certPEM, ca.keyPEM, node, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tlsConfig is the peer configuration node would run with.
func (ca *testCA) tlsConfig(t testing.TB, node string) *tls.Config {
	return MutualTLSConfig(ca.cert(t, node), ca.pool)
}

// freeAddr returns a loopback host:port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// testLogger discards unless RAFTSTORE_TEST_LOG is set; nodes log from
// their own goroutines, which may outlive a test's t.Log.
func testLogger() *slog.Logger {
	if os.Getenv("RAFTSTORE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cluster is a set of real nodes on loopback with real bolt stores.
type cluster struct {
	t     testing.TB
	mu    sync.Mutex
	cfgs  map[string]Config
	nodes map[string]*Node
	order []string
}

// newCluster bootstraps n voters named n1..nN, each with a certificate from
// ca (nil: plain TCP), using timeouts tm.
func newCluster(t testing.TB, n int, ca *testCA, tm Timeouts) *cluster {
	t.Helper()
	c := &cluster{t: t, cfgs: map[string]Config{}, nodes: map[string]*Node{}}
	var peers []Peer
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("n%d", i)
		peers = append(peers, Peer{ID: id, Address: freeAddr(t)})
	}
	base := t.TempDir()
	for _, p := range peers {
		cfg := Config{
			NodeID:   p.ID,
			BindAddr: p.Address,
			DataDir:  filepath.Join(base, p.ID),
			Peers:    peers,
			Timeouts: tm,
			Logger:   testLogger(),
		}
		if ca != nil {
			cfg.TLS = ca.tlsConfig(t, p.ID)
		}
		c.cfgs[p.ID] = cfg
		c.order = append(c.order, p.ID)
	}
	t.Cleanup(c.stopAll)
	for _, id := range c.order {
		c.start(id)
	}
	return c
}

// start opens (or reopens, from its data dir) node id.
func (c *cluster) start(id string) *Node {
	c.t.Helper()
	n, err := Open(c.cfgs[id])
	if err != nil {
		c.t.Fatalf("open %s: %v", id, err)
	}
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
	return n
}

// add registers an extra node that is not in the bootstrap voter set.
func (c *cluster) add(cfg Config) *Node {
	c.t.Helper()
	c.mu.Lock()
	c.cfgs[cfg.NodeID] = cfg
	c.order = append(c.order, cfg.NodeID)
	c.mu.Unlock()
	return c.start(cfg.NodeID)
}

// kill stops id abruptly: no leadership transfer.
func (c *cluster) kill(id string) {
	c.t.Helper()
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n == nil {
		return
	}
	n.shutdownOnce.Do(func() { n.shutdownErr = n.shutdown(10*time.Second, false) })
	if n.shutdownErr != nil {
		c.t.Fatalf("kill %s: %v", id, n.shutdownErr)
	}
}

// stop shuts id down gracefully.
func (c *cluster) stop(id string) {
	c.t.Helper()
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if err := n.Shutdown(10 * time.Second); err != nil {
		c.t.Fatalf("shutdown %s: %v", id, err)
	}
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	ids := make([]string, 0, len(c.nodes))
	for id := range c.nodes {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		c.kill(id)
	}
}

func (c *cluster) node(id string) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// running returns the live nodes in creation order.
func (c *cluster) running() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, id := range c.order {
		if n := c.nodes[id]; n != nil {
			out = append(out, n)
		}
	}
	return out
}

// leader waits until exactly one running node leads and every running voter
// agrees on it, and returns it.
func (c *cluster) leader() *Node {
	c.t.Helper()
	var l *Node
	waitFor(c.t, "a leader all running nodes agree on", func() bool {
		l = nil
		for _, n := range c.running() {
			if n.IsLeader() {
				if l != nil {
					return false
				}
				l = n
			}
		}
		if l == nil {
			return false
		}
		for _, n := range c.running() {
			if id, _ := n.Leader(); id != l.id {
				return false
			}
		}
		return true
	})
	return l
}

// apply submits cmd on whichever node leads, retrying across elections,
// and returns the node that applied it: its state includes cmd and
// everything committed before, so it is the state the others must reach.
func (c *cluster) apply(cmd Command) *Node {
	c.t.Helper()
	var last error
	var by *Node
	waitFor(c.t, fmt.Sprintf("apply of %s", cmd.Type()), func() bool {
		for _, n := range c.running() {
			if !n.IsLeader() {
				continue
			}
			last = n.Apply(cmd, 5*time.Second)
			if last == nil {
				by = n
				return true
			}
			if !errors.Is(last, ErrNotLeader) && !errors.Is(last, ErrLeadershipLost) {
				c.t.Fatalf("apply %s: %v", cmd.Type(), last)
			}
		}
		return false
	})
	return by
}

// converged waits until every running node holds want.
func (c *cluster) converged(nodes []*Node, want State) {
	c.t.Helper()
	waitFor(c.t, "replicas to converge", func() bool {
		for _, n := range nodes {
			if !statesEqual(n.State(), want) {
				return false
			}
		}
		return true
	})
}

// calmTimeouts are slow Raft timeouts for test clusters whose checks are not
// about timing (attacks that must change nothing, join refusals): an accepted
// RequestVote or TimeoutNow changes the leader at once whatever the timeouts,
// while a CPU-starved test machine must not elect a new leader by itself and
// fail a check with "node is not the leader" or "the leader changed".
func calmTimeouts() Timeouts {
	t := DefaultTimeouts()
	t.Heartbeat, t.LeaderLoss, t.Election, t.LeaderLease = time.Second, time.Second, time.Second, 500*time.Millisecond
	return t
}
