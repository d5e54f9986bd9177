package raftstore

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func newTestStream(t *testing.T, cfg *tls.Config) *streamLayer {
	t.Helper()
	s, err := newStreamLayer("127.0.0.1:0", "", cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// acceptAsync delivers the next connection Accept hands out; the channel
// is closed without one when the layer closes first.
func acceptAsync(s *streamLayer) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := s.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

func TestStreamLayerMutualTLS(t *testing.T) {
	ca := newTestCA(t, "a")
	server := newTestStream(t, ca.tlsConfig(t, "server"))
	client := newTestStream(t, ca.tlsConfig(t, "client"))
	accepted := acceptAsync(server)

	c, err := client.Dial(raft.ServerAddress(server.Addr().String()), time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		t.Fatal("server accepted nothing")
	}
	defer sc.Close()
	buf := make([]byte, 4)
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	st := sc.(*tls.Conn).ConnectionState()
	if st.Version != tls.VersionTLS13 || st.PeerCertificates[0].Subject.CommonName != "client" {
		t.Fatalf("version %x, peer %q", st.Version, st.PeerCertificates[0].Subject.CommonName)
	}
}

// TestStreamLayerRefusesForeignClient: a client whose certificate comes
// from another CA, or that has none, never gets a connection through.
func TestStreamLayerRefusesForeignClient(t *testing.T) {
	ca := newTestCA(t, "a")
	foreign := newTestCA(t, "evil")
	server := newTestStream(t, ca.tlsConfig(t, "server"))
	accepted := acceptAsync(server)
	addr := server.Addr().String()

	clients := map[string]*tls.Config{
		"foreign CA": func() *tls.Config {
			// Trusts our CA, so only the server side can refuse it.
			cfg := MutualTLSConfig(foreign.cert(t, "intruder"), ca.pool)
			return cfg
		}(),
		"no certificate": {MinVersion: tls.VersionTLS13, InsecureSkipVerify: true},
	}
	for name, cfg := range clients {
		t.Run(name, func(t *testing.T) {
			c, err := tls.Dial("tcp", addr, cfg)
			if err == nil {
				// TLS 1.3 clients finish before the server checks them; the
				// refusal arrives as an alert on the first read.
				_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
				_, err = c.Read(make([]byte, 1))
				c.Close()
			}
			if err == nil {
				t.Fatal("connection usable")
			}
			if !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("error %v does not say the certificate was refused", err)
			}
		})
	}

	// Plain TCP garbage is dropped too.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Write([]byte("not a TLS client hello, just bytes\n")); err != nil {
		t.Fatal(err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := io.ReadAll(raw); err != nil {
		t.Fatalf("server did not close a plain TCP connection: %v", err)
	}
	raw.Close()

	select {
	case c := <-accepted:
		t.Fatalf("server handed raft a connection from %v", c.RemoteAddr())
	default:
	}
}

// TestStreamLayerRefusesForeignServer: our dialer refuses a server whose
// certificate comes from another CA, in the handshake.
func TestStreamLayerRefusesForeignServer(t *testing.T) {
	ca := newTestCA(t, "a")
	foreign := newTestCA(t, "evil")
	// The impostor trusts our CA, so it would accept us; we must refuse it.
	impostor := newTestStream(t, MutualTLSConfig(foreign.cert(t, "impostor"), ca.pool))
	accepted := acceptAsync(impostor)
	client := newTestStream(t, ca.tlsConfig(t, "client"))
	c, err := client.Dial(raft.ServerAddress(impostor.Addr().String()), time.Second)
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded against a server from a foreign CA")
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("error %v does not mention the certificate", err)
	}
	select {
	case c := <-accepted:
		t.Fatalf("impostor got a connection from %v", c.RemoteAddr())
	default:
	}
}

func TestStreamLayerCloseAbortsPendingHandshakes(t *testing.T) {
	ca := newTestCA(t, "a")
	server := newTestStream(t, ca.tlsConfig(t, "server"))
	raw, err := net.Dial("tcp", server.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	waitFor(t, "the handshake to be pending", func() bool {
		server.mu.Lock()
		defer server.mu.Unlock()
		return len(server.pending) == 1
	})
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := io.ReadAll(raw); err != nil {
		t.Fatalf("pending connection not closed: %v", err)
	}
	if err := server.track(raw); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("track after Close = %v, want net.ErrClosed", err)
	}
}

func TestStreamLayerPendingLimit(t *testing.T) {
	ca := newTestCA(t, "a")
	server := newTestStream(t, ca.tlsConfig(t, "server"))
	server.mu.Lock()
	for i := 0; i < maxPendingHandshakes; i++ {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		server.pending[a] = struct{}{}
	}
	server.mu.Unlock()
	extra, peer := net.Pipe()
	defer extra.Close()
	defer peer.Close()
	if err := server.track(extra); err == nil || !strings.Contains(err.Error(), "already pending") {
		t.Fatalf("track beyond the limit = %v", err)
	}
}

func TestStreamLayerPlainTCP(t *testing.T) {
	server := newTestStream(t, nil)
	client := newTestStream(t, nil)
	accepted := acceptAsync(server)
	c, err := client.Dial(raft.ServerAddress(server.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := <-accepted
	if sc == nil {
		t.Fatal("nothing accepted")
	}
	sc.Close()
	if _, ok := sc.(*net.TCPConn); !ok {
		t.Fatalf("plain layer accepted a %T", sc)
	}
}

func TestNewTLSStreamLayerValidates(t *testing.T) {
	ca := newTestCA(t, "a")
	if _, err := NewTLSStreamLayer("127.0.0.1:0", "", nil); err == nil {
		t.Error("nil config accepted")
	}
	noClientAuth := ca.tlsConfig(t, "n")
	noClientAuth.ClientAuth = tls.RequestClientCert
	if _, err := NewTLSStreamLayer("127.0.0.1:0", "", noClientAuth); err == nil || !strings.Contains(err.Error(), "client certificates") {
		t.Errorf("config without required client certs: %v", err)
	}
	noCert := ca.tlsConfig(t, "n")
	noCert.Certificates = nil
	if _, err := NewTLSStreamLayer("127.0.0.1:0", "", noCert); err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Errorf("config without a certificate: %v", err)
	}
	if _, err := NewTLSStreamLayer("0.0.0.0:0", "", ca.tlsConfig(t, "n")); err == nil || !strings.Contains(err.Error(), "not dialable") {
		t.Errorf("wildcard without advertise address: %v", err)
	}
	s, err := NewTLSStreamLayer("0.0.0.0:0", "198.51.100.11:7950", ca.tlsConfig(t, "n"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Addr().String(); got != "198.51.100.11:7950" {
		t.Errorf("Addr = %s, want the advertised address", got)
	}
}
