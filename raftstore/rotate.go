package raftstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Certificate sources, as CertStatus.Source names them.
const (
	// CertIssued is a certificate this node issues itself from the cluster CA.
	CertIssued = "issued"
	// CertFiles is a certificate read from --tls-cert/--tls-key.
	CertFiles = "files"
	// CertCSR is a worker certificate the leader signed through a Kubernetes CSR.
	CertCSR = "csr"
)

// renewFraction is the part of an issued certificate's lifetime after which it is
// renewed: a third of the lifetime is left to ride out a failing renewal.
const renewFraction = 2.0 / 3.0

// minRetry and maxRetry bound the wait after a failed renewal: often enough to
// renew in time even with lifetimes of seconds, rarely enough that a CA that
// stays broken for days logs a few hundred lines a day, not thousands.
const (
	minRetry = 50 * time.Millisecond
	maxRetry = 5 * time.Minute
)

// CertStatus is what an operator sees of the peer certificate in /raft/status.
type CertStatus struct {
	Source   string    `json:"source"`
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"not_after"`
	// RenewAt is when an issued certificate is replaced; zero for files, which
	// are replaced when they change.
	RenewAt   time.Time `json:"renew_at,omitzero"`
	Renewals  uint64    `json:"renewals"`
	Failures  uint64    `json:"renewal_failures"`
	LastError string    `json:"last_error,omitempty"`
}

// CertSource hands every TLS handshake the current peer certificate and replaces
// it without a restart: an issued certificate is renewed at two thirds of its
// lifetime, a certificate from files is re-read when the files change. Open
// connections keep the certificate they were authenticated with (TLS checks it
// only at the handshake), so a replacement never drops a connection; every new
// handshake, including redials after a dropped connection, presents the new one.
type CertSource struct {
	source string
	logger *slog.Logger
	// next loads a replacement certificate.
	next func() (tls.Certificate, error)
	// poll is how often files are checked; zero for an issued certificate.
	poll time.Duration

	cur atomic.Pointer[tls.Certificate]

	mu        sync.Mutex
	renewAt   time.Time
	lastError string
	files     fileStamps

	renewals atomic.Uint64
	failures atomic.Uint64
	metrics  []prometheus.Collector
}

// NewIssuedCertSource issues the first certificate with issue and renews it at
// two thirds of each certificate's lifetime once Run is called. A failed
// renewal keeps the current certificate, logs the error and retries.
func NewIssuedCertSource(issue func() (tls.Certificate, error), logger *slog.Logger) (*CertSource, error) {
	s := newCertSource(CertIssued, logger)
	s.next = issue
	c, err := issue()
	if err != nil {
		return nil, err
	}
	if err := s.install(c, time.Now()); err != nil {
		return nil, err
	}
	return s, nil
}

// NewFileCertSource loads certFile and keyFile, and once Run is called re-reads
// them every poll after their size or modification time changed and then stayed
// the same for one poll (so a half-written pair is never loaded). A pair that
// does not load keeps the current certificate and logs one error until the files
// change again.
func NewFileCertSource(certFile, keyFile string, poll time.Duration, logger *slog.Logger) (*CertSource, error) {
	if poll <= 0 {
		return nil, fmt.Errorf("certificate files: poll interval %s must be positive", poll)
	}
	s := newCertSource(CertFiles, logger)
	s.poll = poll
	s.next = func() (tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("load %s with key %s: %w", certFile, keyFile, err)
		}
		return c, nil
	}
	s.files = fileStamps{paths: []string{certFile, keyFile}}
	s.files.loaded = s.files.stat()
	s.files.seen = s.files.loaded
	c, err := s.next()
	if err != nil {
		return nil, err
	}
	if err := s.install(c, time.Now()); err != nil {
		return nil, err
	}
	return s, nil
}

// NewCSRCertSource installs first, a worker certificate obtained through a
// Kubernetes CSR, and once Run is called renews it with next at two thirds of
// each certificate's lifetime, like an issued one. The first certificate comes
// from the caller because obtaining it may wait for a leader.
func NewCSRCertSource(first tls.Certificate, next func() (tls.Certificate, error), logger *slog.Logger) (*CertSource, error) {
	s := newCertSource(CertCSR, logger)
	s.next = next
	if err := s.install(first, time.Now()); err != nil {
		return nil, err
	}
	return s, nil
}

// renewsOnTime is true for certificates replaced before they expire (issued or
// CSR), false for files, which are replaced when they change.
func (s *CertSource) renewsOnTime() bool { return s.poll == 0 }

func newCertSource(source string, logger *slog.Logger) *CertSource {
	if logger == nil {
		logger = slog.Default()
	}
	s := &CertSource{source: source, logger: logger}
	s.metrics = []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "raftvip_peer_cert_renewals_total",
			Help: "Times the Raft peer certificate was replaced (renewed, or re-read from changed files) without a restart.",
		}, func() float64 { return float64(s.renewals.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "raftvip_peer_cert_renewal_failures_total",
			Help: "Renewals or reloads of the Raft peer certificate that failed; the previous certificate stayed in use.",
		}, func() float64 { return float64(s.failures.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "raftvip_peer_cert_expiry_timestamp_seconds",
			Help: "Unix time at which the Raft peer certificate in use expires.",
		}, func() float64 { return float64(s.Leaf().NotAfter.Unix()) }),
	}
	return s
}

// install makes c the certificate of every new handshake.
func (s *CertSource) install(c tls.Certificate, now time.Time) error {
	if len(c.Certificate) == 0 {
		return errors.New("peer certificate is empty")
	}
	if c.Leaf == nil {
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return fmt.Errorf("parse peer certificate: %w", err)
		}
		c.Leaf = leaf
	}
	if !now.Before(c.Leaf.NotAfter) {
		return fmt.Errorf("peer certificate %q expired at %s", c.Leaf.Subject.CommonName, c.Leaf.NotAfter.Format(time.RFC3339))
	}
	s.mu.Lock()
	s.renewAt = now.Add(max(time.Duration(float64(c.Leaf.NotAfter.Sub(now))*renewFraction), minRetry))
	s.lastError = ""
	s.mu.Unlock()
	s.cur.Store(&c)
	return nil
}

// Run replaces the certificate when it is due until ctx ends.
func (s *CertSource) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.wait()):
		}
		if s.due(time.Now()) {
			s.renew()
		}
	}
}

// wait is how long Run sleeps before the next check: until the renewal time
// of an issued certificate, one poll for files.
func (s *CertSource) wait() time.Duration {
	if !s.renewsOnTime() {
		return s.poll
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(time.Until(s.renewAt), 0)
}

// due reports whether a replacement is due at now. For files it also records
// the files' stamp, so it must run once per poll.
func (s *CertSource) due(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.renewsOnTime() {
		return !now.Before(s.renewAt)
	}
	return s.files.settledChange()
}

// renew loads a replacement and installs it, or keeps the current certificate.
func (s *CertSource) renew() {
	old := s.Leaf()
	c, err := s.next()
	if err == nil {
		err = s.install(c, time.Now())
	}
	if err != nil {
		s.failures.Add(1)
		s.mu.Lock()
		s.lastError = err.Error()
		if s.renewsOnTime() {
			s.renewAt = time.Now().Add(retryAfter(time.Until(old.NotAfter)))
		}
		s.mu.Unlock()
		s.logger.Error("raft peer certificate not replaced; the current one stays in use",
			"source", s.source, "expires", old.NotAfter.Format(time.RFC3339), "error", err)
		return
	}
	s.renewals.Add(1)
	leaf := s.Leaf()
	s.logger.Info("raft peer certificate replaced", "source", s.source, "subject", leaf.Subject.CommonName,
		"not_after", leaf.NotAfter.Format(time.RFC3339Nano), "previous_not_after", old.NotAfter.Format(time.RFC3339Nano))
}

// retryAfter is the wait before retrying a failed renewal when left remains of
// the current certificate: a tenth of it, so several retries fit before it
// expires; once it has expired, the longest wait, so a broken CA is not hammered.
func retryAfter(left time.Duration) time.Duration {
	if left <= 0 {
		return maxRetry
	}
	return min(max(left/10, minRetry), maxRetry)
}

// Leaf is the certificate new handshakes present.
func (s *CertSource) Leaf() *x509.Certificate { return s.cur.Load().Leaf }

// Status reports the certificate in use and how its replacements went.
func (s *CertSource) Status() CertStatus {
	leaf := s.Leaf()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := CertStatus{
		Source:    s.source,
		Subject:   leaf.Subject.CommonName,
		NotAfter:  leaf.NotAfter.UTC(),
		Renewals:  s.renewals.Load(),
		Failures:  s.failures.Load(),
		LastError: s.lastError,
	}
	if s.renewsOnTime() {
		st.RenewAt = s.renewAt.UTC()
	}
	return st
}

// Collectors returns the certificate's Prometheus series: expiry, renewals and
// failed renewals. Register them once.
func (s *CertSource) Collectors() []prometheus.Collector {
	return append([]prometheus.Collector(nil), s.metrics...)
}

// TLSConfig is MutualTLSConfig with the certificate taken from s at every
// handshake, on both the accepting and the dialling side.
func (s *CertSource) TLSConfig(ca *x509.CertPool) *tls.Config {
	cfg := MutualTLSConfig(*s.cur.Load(), ca)
	cfg.Certificates = nil
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cur.Load(), nil }
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return s.cur.Load(), nil }
	return cfg
}

// fileStamps tracks the size and modification time of the certificate files.
type fileStamps struct {
	paths []string
	// loaded is the stamp of the pair in use (or last tried); seen the one of the
	// previous poll.
	loaded, seen string
}

// stat is a stamp of every file; a missing file stamps as such, so its return
// counts as a change.
func (f *fileStamps) stat() string {
	var out string
	for _, p := range f.paths {
		fi, err := os.Stat(p)
		if err != nil {
			out += p + ":missing;"
			continue
		}
		out += fmt.Sprintf("%s:%d:%d;", p, fi.Size(), fi.ModTime().UnixNano())
	}
	return out
}

// settledChange reports a change since the last load that has stayed put for one
// poll, and records it as loaded: a pair that fails to load is retried only after
// it changes again, so it is reported once.
func (f *fileStamps) settledChange() bool {
	now := f.stat()
	prev := f.seen
	f.seen = now
	if now == f.loaded || now != prev {
		return false
	}
	f.loaded = now
	return true
}
