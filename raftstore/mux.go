package raftstore

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Connection kinds: the first byte a dialler writes on the shared Raft port. One
// authenticated port carries both Raft and the small RPCs followers send the leader
// (health reports, joins), so peers need one firewall rule and one certificate.
const (
	connRaft    byte = 'R'
	connForward byte = 'F'
)

// classifyTimeout bounds how long an accepted connection may take to say what it is.
const classifyTimeout = 5 * time.Second

// muxLayer wraps a raft.StreamLayer and routes accepted connections by their first
// byte: Raft connections to Accept, forwarded requests to handle.
type muxLayer struct {
	// heard maps a dialled address to the monotonic nanoseconds since epoch of the
	// last bytes read from it (*atomic.Int64): on the leader, each follower's last
	// answer. Offsets from epoch, never wall stamps, so an NTP step cannot mark a
	// live peer down or a dead one alive.
	heard     sync.Map
	epoch     time.Time
	inner     raft.StreamLayer
	raftConns chan net.Conn
	handle    func(net.Conn)
	logger    *slog.Logger
	// mayRaft decides whether an authenticated peer may send Raft RPCs (see
	// mayRaft in raftauth.go); until the node sets it, no authenticated peer may.
	mayRaft atomic.Pointer[func(Identity) error]
	// serverAt names the server ID configured at a dialled address, so a dial
	// checks that the certificate it meets is that server's; unset or unknown
	// addresses (a --join target, the VIP) are not checked.
	serverAt atomic.Pointer[func(addr string) (string, bool)]
	// promoting is the membership code's answer to "is this nonvoter being
	// promoted?" (Node.SetPromoting); unset means none is.
	promoting atomic.Pointer[func(id string) bool]
	closeOnce sync.Once
	closed    chan struct{}
}

func newMuxLayer(inner raft.StreamLayer, handle func(net.Conn), logger *slog.Logger) *muxLayer {
	m := &muxLayer{epoch: time.Now(), inner: inner, raftConns: make(chan net.Conn), handle: handle, logger: logger, closed: make(chan struct{})}
	go m.acceptLoop()
	return m
}

// allowRaft applies the mayRaft hook; no hook refuses every authenticated peer.
func (m *muxLayer) allowRaft(id Identity) error {
	if !id.Authenticated {
		return nil
	}
	f := m.mayRaft.Load()
	if f == nil {
		return errors.New("raft not started")
	}
	return (*f)(id)
}

func (m *muxLayer) acceptLoop() {
	for {
		c, err := m.inner.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go m.classify(c)
	}
}

func (m *muxLayer) classify(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(classifyTimeout))
	var kind [1]byte
	if _, err := io.ReadFull(c, kind[:]); err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	switch kind[0] {
	case connRaft:
		id := identityOf(c)
		if err := m.allowRaft(id); err != nil {
			m.refuseRaft(c, id, err)
			return
		}
		if id.Authenticated {
			c = guardRaftConn(c, id, m.allowRaft, m.logger)
		}
		select {
		case m.raftConns <- c:
		case <-m.closed:
			c.Close()
		}
	case connForward:
		m.handle(c)
	default:
		c.Close()
	}
}

// refuseRaft closes a Raft connection from a peer that may not speak Raft, with
// one log line naming the peer and the RPC it opened with. Only the type byte
// is read: the request itself is never decoded for a peer we do not trust.
func (m *muxLayer) refuseRaft(c net.Conn, id Identity, err error) {
	defer c.Close()
	rpc := "none"
	_ = c.SetReadDeadline(time.Now().Add(classifyTimeout))
	var t [1]byte
	if _, rerr := io.ReadFull(c, t[:]); rerr == nil {
		rpc = rpcName(t[0])
	}
	m.logger.Warn("refused raft rpc", "peer", id.Name, "rpc", rpc, "remote", c.RemoteAddr().String(), "error", err)
}

// Accept implements net.Listener for raft's transport.
func (m *muxLayer) Accept() (net.Conn, error) {
	select {
	case c := <-m.raftConns:
		return c, nil
	case <-m.closed:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (m *muxLayer) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.closed)
		err = m.inner.Close()
	})
	return err
}

// Addr implements net.Listener.
func (m *muxLayer) Addr() net.Addr { return m.inner.Addr() }

// Dial implements raft.StreamLayer: a Raft connection. Reads on it record when the
// peer last answered, which is how the leader knows a node is alive (every
// heartbeat is answered) without reaching into raft's internals.
func (m *muxLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := m.dialKind(addr, timeout, connRaft)
	if err != nil {
		return nil, err
	}
	v, _ := m.heard.LoadOrStore(string(addr), new(atomic.Int64))
	return &heardConn{Conn: c, heard: v.(*atomic.Int64), epoch: m.epoch}, nil
}

// lastHeard is when addr last answered on a Raft connection this node dialled.
func (m *muxLayer) lastHeard(addr string) (time.Time, bool) {
	v, ok := m.heard.Load(addr)
	if !ok {
		return time.Time{}, false
	}
	ns := v.(*atomic.Int64).Load()
	if ns == 0 {
		return time.Time{}, false
	}
	return m.epoch.Add(time.Duration(ns)), true
}

// heardConn stamps every successful read with its monotonic offset from epoch.
type heardConn struct {
	net.Conn
	heard *atomic.Int64
	epoch time.Time
}

func (c *heardConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.heard.Store(max(int64(time.Since(c.epoch)), 1))
	}
	return n, err
}

func (m *muxLayer) dialKind(addr raft.ServerAddress, timeout time.Duration, kind byte) (net.Conn, error) {
	c, err := m.inner.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	if err := m.checkDialled(addr, c); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	_ = c.SetWriteDeadline(time.Time{})
	return c, nil
}

// checkDialled refuses a connection whose certificate is not the one of the
// server configured at addr: an address reused by another node, or a node
// impersonating a peer, gets no Raft RPC from us.
func (m *muxLayer) checkDialled(addr raft.ServerAddress, c net.Conn) error {
	id := identityOf(c)
	if !id.Authenticated {
		return nil
	}
	f := m.serverAt.Load()
	if f == nil {
		return nil
	}
	want, ok := (*f)(string(addr))
	if !ok || want == id.Name {
		return nil
	}
	return fmt.Errorf("dial %s: certificate is for %q, the configuration has %q there", addr, id.Name, want)
}

// peerName is the node name a connection authenticated as: the CN of its verified
// client certificate, or "" on an insecure transport.
func peerName(c net.Conn) string { return identityOf(c).Name }

// maxFrame bounds one forwarded request or response.
const maxFrame = 1 << 20

func writeFrame(w io.Writer, b []byte) error {
	if len(b) > maxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", len(b), maxFrame)
	}
	hdr := []byte{byte(len(b) >> 24), byte(len(b) >> 16), byte(len(b) >> 8), byte(len(b))}
	if _, err := w.Write(append(hdr, b...)); err != nil {
		return err
	}
	return nil
}

func readFrame(r io.Reader) ([]byte, error) { return readFrameMax(r, maxFrame) }

// frameTooLargeError refuses a frame by its header alone. It carries the announced
// size so a server can discard the body before answering: closing with the body
// unread would reset the connection and the sender would never see the refusal.
type frameTooLargeError struct{ size, limit int }

func (e *frameTooLargeError) Error() string {
	return fmt.Sprintf("frame of %d bytes exceeds %d", e.size, e.limit)
}

// readFrameMax reads one frame of at most limit bytes; a larger one is refused
// before any of it is read.
func readFrameMax(r io.Reader, limit int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(hdr[0])<<24 | int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
	if n > limit {
		return nil, &frameTooLargeError{size: n, limit: limit}
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}
