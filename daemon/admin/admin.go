// Package admin is the agent's local admin socket: a unix socket that only root
// (or the agent's own user) may use, carrying the commands that change the
// cluster or read its whole state (`raftvip members`, `raftvip snapshot save`).
// The status port stays read-only; anything that writes goes through here.
//
// The protocol is one JSON request line and one JSON response line per
// connection; a response with Size > 0 is followed by exactly Size bytes of
// payload (a backup file).
package admin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/raftvip/raftvip/raftstore"
)

// Ops a Request may carry.
const (
	OpMembers  = "members"
	OpRemove   = "remove"
	OpSnapshot = "snapshot"
)

// maxRequest bounds a request line; requests are a few dozen bytes.
const maxRequest = 64 << 10

// connTimeout bounds one connection: a removal waits for a commit, a backup
// for a snapshot of a few MB.
const connTimeout = 30 * time.Second

// Request is what a client asks.
type Request struct {
	Op   string `json:"op"`
	Name string `json:"name,omitempty"` // OpRemove: the member
}

// Response is the agent's answer. Error is set alone when the request failed.
type Response struct {
	Error   string                  `json:"error,omitempty"`
	Members *raftstore.MemberList   `json:"members,omitempty"`
	Backup  *raftstore.BackupHeader `json:"backup,omitempty"`
	// Size is the length of the payload that follows the response line.
	Size int64 `json:"size,omitempty"`
}

// Backend does the work; the daemon implements it over its Raft node.
type Backend interface {
	Members() (raftstore.MemberList, error)
	Remove(name string) error
	// Backup writes a backup file to w.
	Backup(w io.Writer) (raftstore.BackupHeader, error)
}

// ErrInUse means a live process already listens on the socket path.
var ErrInUse = errors.New("another process listens there")

// Listen creates the socket at path, mode 0600, in a directory it creates with
// mode 0700. A socket file left by a crashed agent is replaced; one a live agent
// serves is not (ErrInUse), nor is a file that is not a socket.
//
// Who serves the socket is decided by an flock on path+".lock", held until the
// listener closes, not by dialling: a socket is bound before it listens, so a
// dial in between is refused and would take a live agent's socket for stale.
// The kernel drops the lock of a crashed agent by itself.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("admin socket %s: %w (is another raftvip agent running on this host?)", path, ErrInUse)
		}
		return nil, fmt.Errorf("admin socket %s: lock: %w", path, err)
	}
	ln, err := listenLocked(path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return &lockedListener{Listener: ln, lock: lock}, nil
}

// listenLocked binds path while this process holds its lock, so any socket file
// already there was left by an agent that is gone.
func listenLocked(path string) (net.Listener, error) {
	switch fi, err := os.Lstat(path); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	case fi.Mode()&fs.ModeSocket == 0:
		return nil, fmt.Errorf("admin socket %s: exists and is not a socket", path)
	default:
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("admin socket %s: remove stale socket: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	return ln, nil
}

// lockedListener releases the socket's lock when it closes, after the socket
// file is gone, so the next agent never finds a live one.
type lockedListener struct {
	net.Listener
	lock *os.File
	once sync.Once
}

func (l *lockedListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { l.lock.Close() })
	return err
}

// Server answers admin requests on a listener from Listen.
type Server struct {
	Backend Backend
	Log     *slog.Logger
	// Allowed decides whether a peer uid may use the socket; nil means root
	// or the agent's own effective uid.
	Allowed func(uid uint32) bool
}

// Serve accepts connections until ln is closed.
func (s *Server) Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("admin socket: accept: %w", err)
		}
		go s.serveConn(c)
	}
}

func (s *Server) allowed(uid uint32) bool {
	if s.Allowed != nil {
		return s.Allowed(uid)
	}
	return uid == 0 || int(uid) == os.Geteuid()
}

func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	// Whatever the client sent and was not read is drained after the answer:
	// closing a unix socket with unread data resets it, and the client would
	// lose the answer that says what was wrong.
	defer drain(c)
	_ = c.SetDeadline(time.Now().Add(connTimeout))
	uid, pid, err := peerCred(c)
	if err != nil {
		s.Log.Warn("admin socket: cannot read the peer's credentials", "err", err)
		writeResponse(c, Response{Error: "admin socket: cannot read your credentials"})
		return
	}
	if !s.allowed(uid) {
		s.Log.Warn("admin socket: refused a client that is not root", "uid", uid, "pid", pid)
		writeResponse(c, Response{Error: fmt.Sprintf("admin socket: uid %d may not use it, only root", uid)})
		return
	}
	req, err := readRequest(bufio.NewReader(io.LimitReader(c, maxRequest+1)))
	if err != nil {
		writeResponse(c, Response{Error: err.Error()})
		return
	}
	s.handle(c, req, uid)
}

func (s *Server) handle(c net.Conn, req Request, uid uint32) {
	switch req.Op {
	case OpMembers:
		list, err := s.Backend.Members()
		if err != nil {
			writeResponse(c, Response{Error: err.Error()})
			return
		}
		writeResponse(c, Response{Members: &list})
	case OpRemove:
		if req.Name == "" {
			writeResponse(c, Response{Error: "remove: empty member name"})
			return
		}
		s.Log.Info("admin socket: removing a member", "id", req.Name, "uid", uid)
		if err := s.Backend.Remove(req.Name); err != nil {
			s.Log.Warn("admin socket: removal refused or failed", "id", req.Name, "err", err)
			writeResponse(c, Response{Error: err.Error()})
			return
		}
		writeResponse(c, Response{})
	case OpSnapshot:
		var buf spool
		h, err := s.Backend.Backup(&buf)
		if err != nil {
			writeResponse(c, Response{Error: err.Error()})
			return
		}
		s.Log.Info("admin socket: backup taken", "index", h.Index, "bytes", len(buf.b), "uid", uid)
		if writeResponse(c, Response{Backup: &h, Size: int64(len(buf.b))}) == nil {
			_, _ = c.Write(buf.b)
		}
	default:
		writeResponse(c, Response{Error: fmt.Sprintf("unknown op %q (want %s, %s or %s)", req.Op, OpMembers, OpRemove, OpSnapshot)})
	}
}

// drain reads and drops what the client still sends, briefly.
func drain(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 4*maxRequest))
}

// spool collects a backup so its size is known before the response line.
type spool struct{ b []byte }

func (s *spool) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }

// readRequest reads and checks one request line.
func readRequest(r *bufio.Reader) (Request, error) {
	var req Request
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxRequest {
		return req, fmt.Errorf("request longer than %d bytes", maxRequest)
	}
	if err != nil {
		return req, fmt.Errorf("request: no complete line: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("malformed request: %w", err)
	}
	return req, nil
}

func writeResponse(w io.Writer, resp Response) error {
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// peerCred reads the connecting process's uid and pid (SO_PEERCRED).
func peerCred(c net.Conn) (uid uint32, pid int32, err error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, 0, fmt.Errorf("not a unix connection: %T", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if credErr != nil {
		return 0, 0, fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	return cred.Uid, cred.Pid, nil
}

// Call sends req to the agent at socket and returns its response. A payload
// that follows is copied to payload (which may be nil when none is expected).
// The error names the socket and, for the usual mistakes, what to do.
func Call(socket string, req Request, timeout time.Duration, payload io.Writer) (Response, error) {
	var resp Response
	c, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		return resp, dialError(socket, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	b, err := json.Marshal(req)
	if err != nil {
		return resp, err
	}
	// A refusing agent may answer before it reads the request, so a failed
	// write still leaves its answer to read.
	_, werr := c.Write(append(b, '\n'))
	br := bufio.NewReader(c)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return resp, fmt.Errorf("admin socket %s: no answer: %w", socket, errors.Join(werr, err))
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		return resp, fmt.Errorf("admin socket %s: not a raftvip answer: %w", socket, err)
	}
	if resp.Error != "" {
		return resp, errors.New(resp.Error)
	}
	if resp.Size > 0 {
		if payload == nil {
			payload = io.Discard
		}
		n, err := io.CopyN(payload, br, resp.Size)
		if err != nil {
			return resp, fmt.Errorf("admin socket %s: payload cut after %d of %d bytes: %w", socket, n, resp.Size, err)
		}
	}
	return resp, nil
}

func dialError(socket string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("admin socket %s does not exist: is the agent running on this node, and is --admin-socket the same?", socket)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("admin socket %s: permission denied: run this as root", socket)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("admin socket %s: no agent listens there (a stale socket?): is the agent running?", socket)
	}
	return fmt.Errorf("admin socket %s: %w", socket, err)
}
