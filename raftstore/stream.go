package raftstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

const (
	// handshakeTimeout bounds a TLS handshake. On one L2 segment a TLS 1.3
	// handshake with P-256 keys takes a round trip and a millisecond or two
	// of CPU; a peer that needs longer is broken, and waiting on it would
	// only delay the retry.
	handshakeTimeout = time.Second
	// maxPendingHandshakes bounds the connections accepted but not yet
	// authenticated, so a flood of idle connections cannot pin unbounded
	// goroutines.
	maxPendingHandshakes = 64
	// maxPendingPerSource bounds them per source IP, so one host opening
	// idle connections cannot take all maxPendingHandshakes slots and lock
	// out the real peers. A healthy peer has at most a few handshakes in
	// flight (raft's pool refill plus a forwarded request).
	maxPendingPerSource = 8
)

// streamLayer is raft's StreamLayer over TCP, optionally wrapped in mutual
// TLS. Inbound TLS handshakes run off the accept loop and only
// authenticated connections reach raft: a peer without a certificate from
// our CA never gets a single RPC through.
type streamLayer struct {
	ln        net.Listener
	advertise *net.TCPAddr
	tls       *tls.Config
	logger    *slog.Logger
	limiter   *repeatLimiter

	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once

	mu        sync.Mutex
	pending   map[net.Conn]struct{}
	perSource map[string]int
	wg        sync.WaitGroup
}

var _ raft.StreamLayer = (*streamLayer)(nil)

// NewTLSStreamLayer listens on bindAddr and returns a raft.StreamLayer that
// speaks mutual TLS with cfg (see MutualTLSConfig). advertiseAddr is the
// address other peers dial; empty means the listener's address, which must
// then not be a wildcard.
func NewTLSStreamLayer(bindAddr, advertiseAddr string, cfg *tls.Config) (raft.StreamLayer, error) {
	if cfg == nil {
		return nil, errors.New("raft TLS stream layer: nil TLS config")
	}
	return newStreamLayer(bindAddr, advertiseAddr, cfg, slog.Default())
}

func newStreamLayer(bindAddr, advertiseAddr string, cfg *tls.Config, logger *slog.Logger) (*streamLayer, error) {
	if cfg != nil {
		if cfg.ClientAuth != tls.RequireAndVerifyClientCert {
			return nil, errors.New("raft TLS stream layer: config must require and verify client certificates")
		}
		if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil {
			return nil, errors.New("raft TLS stream layer: config has no certificate")
		}
	}
	ln, err := net.Listen("tcp", bindAddr)
	if err != nil {
		return nil, fmt.Errorf("raft listen on %s: %w", bindAddr, err)
	}
	adv, err := advertisable(advertiseAddr, ln.Addr())
	if err != nil {
		ln.Close()
		return nil, err
	}
	s := &streamLayer{
		ln:        ln,
		advertise: adv,
		tls:       cfg,
		logger:    logger,
		limiter:   newRepeatLimiter(repeatWindow),
		conns:     make(chan net.Conn),
		closed:    make(chan struct{}),
		pending:   map[net.Conn]struct{}{},
		perSource: map[string]int{},
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// advertisable resolves the address peers should dial. raft puts it in
// every RPC header, so a wildcard would tell peers nothing.
func advertisable(advertise string, listen net.Addr) (*net.TCPAddr, error) {
	if advertise == "" {
		advertise = listen.String()
	}
	a, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil {
		return nil, fmt.Errorf("raft advertise address %q: %w", advertise, err)
	}
	if a.IP == nil || a.IP.IsUnspecified() {
		return nil, fmt.Errorf("raft advertise address %q is not dialable; set an explicit advertise address", advertise)
	}
	if a.Port == 0 {
		a.Port = listen.(*net.TCPAddr).Port
	}
	return a, nil
}

func (s *streamLayer) acceptLoop() {
	defer s.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.closed:
				return
			default:
			}
			s.logger.Warn("raft accept failed", "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.closed:
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if s.tls == nil {
			s.deliver(c)
			continue
		}
		if err := s.track(c); err != nil {
			s.warn("raft connection refused", c.RemoteAddr(), err)
			c.Close()
			continue
		}
		s.wg.Add(1)
		go s.handshake(c)
	}
}

// track registers a connection whose handshake is in flight, so Close can
// abort it. It refuses when closed or when the pending limit is reached.
func (s *streamLayer) track(c net.Conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return net.ErrClosed
	default:
	}
	if len(s.pending) >= maxPendingHandshakes {
		return fmt.Errorf("%d TLS handshakes already pending", maxPendingHandshakes)
	}
	src := sourceHost(c.RemoteAddr())
	if s.perSource[src] >= maxPendingPerSource {
		return fmt.Errorf("%d TLS handshakes already pending from %s", maxPendingPerSource, src)
	}
	s.pending[c] = struct{}{}
	s.perSource[src]++
	return nil
}

func (s *streamLayer) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[c]; !ok {
		return
	}
	delete(s.pending, c)
	src := sourceHost(c.RemoteAddr())
	if s.perSource[src]--; s.perSource[src] <= 0 {
		delete(s.perSource, src)
	}
}

// sourceHost is the IP a connection comes from, without the port.
func sourceHost(a net.Addr) string {
	if a == nil {
		return ""
	}
	if h, _, err := net.SplitHostPort(a.String()); err == nil {
		return h
	}
	return a.String()
}

func (s *streamLayer) handshake(raw net.Conn) {
	defer s.wg.Done()
	defer s.untrack(raw)
	tc := tls.Server(raw, s.tls)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.warn("raft TLS handshake from peer failed", raw.RemoteAddr(), err)
		raw.Close()
		return
	}
	s.deliver(tc)
}

// warn logs a refused connection, at most once per window per remote host:
// a misconfigured peer retries many times a second.
func (s *streamLayer) warn(msg string, remote net.Addr, err error) {
	host := sourceHost(remote)
	ok, suppressed := s.limiter.allow(msg + "\x00" + host)
	if !ok {
		return
	}
	args := []any{"remote", remote.String()}
	if err != nil {
		args = append(args, "error", err)
	}
	if suppressed > 0 {
		args = append(args, "repeats_suppressed", suppressed)
	}
	s.logger.Warn(msg, args...)
}

func (s *streamLayer) deliver(c net.Conn) {
	select {
	case s.conns <- c:
	case <-s.closed:
		c.Close()
	}
}

// Accept implements net.Listener; it returns authenticated connections only.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener. It aborts in-flight handshakes and waits
// for the accept loop to finish.
func (s *streamLayer) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		err = s.ln.Close()
		s.mu.Lock()
		for c := range s.pending {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return err
}

// Addr implements net.Listener with the advertised address.
func (s *streamLayer) Addr() net.Addr { return s.advertise }

// Dial implements raft.StreamLayer. With TLS the handshake completes (or
// fails) before Dial returns, bounded by the smaller of timeout and
// handshakeTimeout.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("tcp", string(address))
	if err != nil {
		return nil, err
	}
	if s.tls == nil {
		return c, nil
	}
	hs := handshakeTimeout
	if timeout > 0 && timeout < hs {
		hs = timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), hs)
	defer cancel()
	tc := tls.Client(c, s.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("raft TLS handshake with %s: %w", address, err)
	}
	return tc, nil
}
