package raftstore

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// Raft trusts the sender ID written inside each RPC, and any certificate from the
// cluster CA passes the TLS handshake. So the accepting side decides twice who may
// speak Raft: once per connection (mayRaft: is the certificate's node a voter?) and
// once per RPC (checkRPCHeader: does the RPC claim to come from that node?).

// errNotVoter refuses a Raft connection from a node that may not send Raft RPCs.
var errNotVoter = errors.New("not a voter in the raft configuration")

// mayRaft decides whether the node named by a peer's certificate may open a Raft
// connection to us, given our latest configuration. Voters may; a nonvoter (or
// staging server) only while promoting says it is being promoted. Before this node
// knows any configuration (a fresh joiner waiting for its first AppendEntries), only
// control-plane certificates may: those are the only ones a leader can hold. On an
// insecure transport nobody is authenticated and everyone may.
func mayRaft(id Identity, cfg raft.Configuration, promoting func(string) bool) error {
	if !id.Authenticated {
		return nil
	}
	if len(cfg.Servers) == 0 {
		if id.ControlPlane {
			return nil
		}
		return fmt.Errorf("%q: no raft configuration yet and not a control-plane certificate", id.Name)
	}
	for _, s := range cfg.Servers {
		if string(s.ID) != id.Name {
			continue
		}
		if s.Suffrage == raft.Voter {
			return nil
		}
		if promoting != nil && promoting(id.Name) {
			return nil
		}
		return fmt.Errorf("%q is a %s: %w", id.Name, s.Suffrage, errNotVoter)
	}
	return fmt.Errorf("%q is not a member: %w", id.Name, errNotVoter)
}

// RPC type bytes of hashicorp/raft's NetworkTransport wire format (net_transport.go):
// each request is one of these bytes followed by the msgpack-encoded request.
const (
	rpcAppendEntries uint8 = iota
	rpcRequestVote
	rpcInstallSnapshot
	rpcTimeoutNow
	rpcRequestPreVote
)

// rpcName names an RPC type byte for log lines.
func rpcName(t uint8) string {
	switch t {
	case rpcAppendEntries:
		return "AppendEntries"
	case rpcRequestVote:
		return "RequestVote"
	case rpcInstallSnapshot:
		return "InstallSnapshot"
	case rpcTimeoutNow:
		return "TimeoutNow"
	case rpcRequestPreVote:
		return "RequestPreVote"
	}
	return fmt.Sprintf("unknown(%d)", t)
}

// newRPCRequest returns an empty request of RPC type t, to decode into.
func newRPCRequest(t uint8) (raft.WithRPCHeader, error) {
	switch t {
	case rpcAppendEntries:
		return &raft.AppendEntriesRequest{}, nil
	case rpcRequestVote:
		return &raft.RequestVoteRequest{}, nil
	case rpcInstallSnapshot:
		return &raft.InstallSnapshotRequest{}, nil
	case rpcTimeoutNow:
		return &raft.TimeoutNowRequest{}, nil
	case rpcRequestPreVote:
		return &raft.RequestPreVoteRequest{}, nil
	}
	return nil, fmt.Errorf("unknown rpc type %d", t)
}

// checkRPCHeader refuses an RPC whose claimed sender is not the certificate's
// node. raft falls back to the deprecated address fields when the ID is empty, so
// an empty ID is refused too: every raftvip node sends one.
func checkRPCHeader(certName string, req raft.WithRPCHeader) error {
	if certName == "" {
		return nil
	}
	h := req.GetRPCHeader()
	if string(h.ID) != certName {
		return fmt.Errorf("rpc claims to be from %q, certificate is for %q", h.ID, certName)
	}
	return nil
}

// guardedConn is an accepted Raft connection whose requests are decoded and
// checked before raft sees them. A goroutine reads the peer's bytes, decodes each
// request, checks it, and re-encodes it into a pipe that raft reads: raft only
// ever decodes what was checked. Writes (raft's responses) go straight to the
// peer.
type guardedConn struct {
	net.Conn
	pr        *io.PipeReader
	closeOnce sync.Once
}

// guardRaftConn starts checking c, which authenticated as id. allowed re-checks
// the connection before every request, so a voter removed from the configuration
// loses its open connections too; logger gets one line per refusal.
func guardRaftConn(c net.Conn, id Identity, allowed func(Identity) error, logger *slog.Logger) net.Conn {
	pr, pw := io.Pipe()
	g := &guardedConn{Conn: c, pr: pr}
	go g.pump(pw, id, allowed, logger)
	return g
}

func (g *guardedConn) pump(pw *io.PipeWriter, id Identity, allowed func(Identity) error, logger *slog.Logger) {
	r := bufio.NewReaderSize(g.Conn, 64<<10)
	dec := codec.NewDecoder(r, &codec.MsgpackHandle{})
	// The same handle settings as raft's sender (MsgpackUseNewTimeFormat false),
	// so raft decodes the re-encoded request exactly as it would the original.
	h := &codec.MsgpackHandle{}
	h.TimeNotBuiltin = true
	enc := codec.NewEncoder(pw, h)
	refuse := func(rpc string, err error) {
		logger.Warn("refused raft rpc", "peer", id.Name, "rpc", rpc, "remote", g.RemoteAddr().String(), "error", err)
		g.Conn.Close()
		pw.CloseWithError(err)
	}
	for {
		t, err := r.ReadByte()
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		req, err := newRPCRequest(t)
		if err != nil {
			refuse(rpcName(t), err)
			return
		}
		if err := dec.Decode(req); err != nil {
			pw.CloseWithError(err)
			return
		}
		if err := allowed(id); err != nil {
			refuse(rpcName(t), err)
			return
		}
		if err := checkRPCHeader(id.Name, req); err != nil {
			refuse(rpcName(t), err)
			return
		}
		if _, err := pw.Write([]byte{t}); err != nil {
			return
		}
		if err := enc.Encode(req); err != nil {
			return
		}
		if s, ok := req.(*raft.InstallSnapshotRequest); ok {
			if _, err := io.CopyN(pw, r, s.Size); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}
}

// Read implements net.Conn: raft reads the checked requests.
func (g *guardedConn) Read(b []byte) (int, error) { return g.pr.Read(b) }

// Close implements net.Conn.
func (g *guardedConn) Close() error {
	var err error
	g.closeOnce.Do(func() {
		err = g.Conn.Close()
		g.pr.Close()
	})
	return err
}

// SetPromoting tells the transport which nonvoters are being promoted to voter:
// they may send Raft RPCs (a staging server catching up campaigns once it is a
// voter, and must be heard the moment it is). The membership code sets it; by
// default no nonvoter may speak Raft.
func (n *Node) SetPromoting(promoting func(id string) bool) {
	n.mux.promoting.Store(&promoting)
}

// guardRaft hands the transport the decisions it needs from the live
// configuration: who may send Raft RPCs, and which server each address is.
func (n *Node) guardRaft() {
	allow := func(id Identity) error {
		var promoting func(string) bool
		if p := n.mux.promoting.Load(); p != nil {
			promoting = *p
		}
		return mayRaft(id, n.raft.GetConfiguration().Configuration(), promoting)
	}
	at := func(addr string) (string, bool) {
		return serverAt(n.raft.GetConfiguration().Configuration(), addr)
	}
	n.mux.mayRaft.Store(&allow)
	n.mux.serverAt.Store(&at)
}

// serverAt is the ID of the server configured at addr, if exactly one is.
func serverAt(cfg raft.Configuration, addr string) (string, bool) {
	id, n := "", 0
	for _, s := range cfg.Servers {
		if string(s.Address) == addr {
			id, n = string(s.ID), n+1
		}
	}
	if n != 1 {
		return "", false
	}
	return id, true
}
