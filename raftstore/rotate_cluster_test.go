package raftstore

import (
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rotationTTL is the certificate lifetime of the rotation test: X.509 times
// have whole seconds, so each certificate lives 2-3s and is renewed after
// 1.3-2s.
const rotationTTL = 3 * time.Second

// presented records the serial numbers a node's certificate source handed to
// handshakes, to prove renewed certificates were used by new connections.
type presented struct {
	mu      sync.Mutex
	serials map[string]bool
	count   atomic.Int64
}

func (p *presented) add(c *tls.Certificate) {
	p.count.Add(1)
	p.mu.Lock()
	p.serials[c.Leaf.SerialNumber.String()] = true
	p.mu.Unlock()
}

func (p *presented) distinct() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.serials)
}

// recording wraps cfg's certificate callbacks so every handshake is recorded.
func recording(cfg *tls.Config, p *presented) *tls.Config {
	getCert, getClient := cfg.GetCertificate, cfg.GetClientCertificate
	cfg.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		c, err := getCert(h)
		if err == nil {
			p.add(c)
		}
		return c, err
	}
	cfg.GetClientCertificate = func(r *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		c, err := getClient(r)
		if err == nil {
			p.add(c)
		}
		return c, err
	}
	return cfg
}

// rotatingCluster is a 3-voter TLS cluster whose nodes renew certificates
// that live rotationTTL.
func rotatingCluster(t *testing.T, ca *testCA, tm Timeouts) (*cluster, map[string]*CertSource, map[string]*presented) {
	t.Helper()
	c := &cluster{t: t, cfgs: map[string]Config{}, nodes: map[string]*Node{}}
	sources := map[string]*CertSource{}
	seen := map[string]*presented{}
	var peers []Peer
	for i := 1; i <= 3; i++ {
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i), Address: freeAddr(t)})
	}
	base := t.TempDir()
	for _, p := range peers {
		src, err := NewIssuedCertSource(ca.issuer(t, p.ID, rotationTTL), testLogger())
		if err != nil {
			t.Fatal(err)
		}
		runSource(t, src)
		sources[p.ID] = src
		seen[p.ID] = &presented{serials: map[string]bool{}}
		c.cfgs[p.ID] = Config{
			NodeID: p.ID, BindAddr: p.Address, DataDir: filepath.Join(base, p.ID), Peers: peers,
			Timeouts: tm, Logger: testLogger(), TLS: recording(src.TLSConfig(ca.pool), seen[p.ID]),
		}
		c.order = append(c.order, p.ID)
	}
	t.Cleanup(c.stopAll)
	for _, id := range c.order {
		c.start(id)
	}
	return c, sources, seen
}

// TestClusterSurvivesCertificateRotation runs a TLS cluster through dozens of
// certificate renewals while connections are dropped on purpose, so every
// reconnection needs a fresh handshake: the leader and its term stay, every
// write commits, and a follower restarted after all first certificates expired
// catches up. Without renewal the first redial after 3s fails its handshake.
func TestClusterSurvivesCertificateRotation(t *testing.T) {
	ca := newTestCA(t, "rotation-ca")
	// Generous timeouts: the test is about handshakes, not failover speed, and
	// must not see an election from a stall on a shared machine.
	tm := Timeouts{Heartbeat: time.Second, Election: time.Second, LeaderLease: 500 * time.Millisecond}
	c, sources, seen := rotatingCluster(t, ca, tm)
	leader := c.leader()
	term := leader.raft.CurrentTerm()
	firstExpiry := map[string]time.Time{}
	for id, s := range sources {
		firstExpiry[id] = s.Leaf().NotAfter
	}
	c.apply(SetPools{Pools: []Pool{{Name: "default", Ranges: []string{"198.51.100.0/24"}, AutoAssign: true}}})

	// Writes flow on the leader the whole time; each must commit.
	stop := make(chan struct{})
	var writes sync.WaitGroup
	var committed atomic.Int64
	writes.Add(1)
	go func() {
		defer writes.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if err := leader.Apply(allocation(i), 5*time.Second); err != nil {
				t.Errorf("write %d on the leader: %v", i, err)
				return
			}
			committed.Add(1)
		}
	}()

	followers := []string{}
	for _, id := range c.order {
		if id != leader.id {
			followers = append(followers, id)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	drops, restarts := 0, 0
	minRenewals := func() uint64 {
		low := uint64(1 << 62)
		for _, s := range sources {
			low = min(low, s.Status().Renewals)
		}
		return low
	}
	deadline := time.Now().Add(2 * time.Minute)
	for minRenewals() < 12 {
		if time.Now().After(deadline) {
			t.Fatalf("renewals stalled at %d per node", minRenewals())
		}
		time.Sleep(150 * time.Millisecond)
		// Drop every pooled and inbound connection of one node: the next RPC in
		// either direction redials with a new handshake.
		c.node(c.order[rng.IntN(len(c.order))]).trans.CloseStreams()
		drops++
		if drops%15 == 0 {
			// Restart a follower: a new listener, new handshakes both ways.
			id := followers[restarts%len(followers)]
			c.kill(id)
			c.start(id)
			restarts++
		}
	}
	close(stop)
	writes.Wait()

	// Every first certificate has expired by now; a follower restarted now can
	// only catch up through handshakes with renewed certificates.
	for id, exp := range firstExpiry {
		if time.Now().Before(exp) {
			t.Fatalf("%s's first certificate is still valid (until %s): the test proved nothing", id, exp)
		}
	}
	c.kill(followers[0])
	c.start(followers[0])
	want := c.apply(SetOwner{VIP: "198.51.100.1", Node: leader.id, Service: "ns/svc-0"}).State()
	c.converged(c.running(), want)

	if l := c.leader(); l.id != leader.id || l.raft.CurrentTerm() != term {
		t.Fatalf("leader %s term %d after rotation, want %s term %d", l.id, l.raft.CurrentTerm(), leader.id, term)
	}
	if committed.Load() < 100 {
		t.Fatalf("only %d writes committed", committed.Load())
	}
	for id, p := range seen {
		// Each renewed certificate a node held while connections were dropped
		// was presented in some handshake.
		if d := p.distinct(); d < 6 {
			t.Errorf("%s presented %d distinct certificates in %d handshakes, want renewed ones in use", id, d, p.count.Load())
		}
		if st := sources[id].Status(); st.Failures != 0 {
			t.Errorf("%s: %d failed renewals: %s", id, st.Failures, st.LastError)
		}
	}
	t.Logf("%d renewals per node at least, %d connection drops, %d follower restarts, %d writes committed",
		minRenewals(), drops, restarts+1, committed.Load())
}
