package admin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// helperEnv makes the test binary act as an admin client: it is re-executed as
// user nobody to prove the socket refuses non-root callers.
const helperEnv = "RAFTVIP_ADMIN_TEST_CLIENT"

func TestMain(m *testing.M) {
	if socket := os.Getenv(helperEnv); socket != "" {
		_, err := Call(socket, Request{Op: OpMembers}, 5*time.Second, nil)
		fmt.Fprintln(os.Stdout, "result:", err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeBackend records removals and returns canned answers.
type fakeBackend struct {
	removed   []string
	removeErr error
	backup    []byte
}

func (f *fakeBackend) Members() (raftstore.MemberList, error) {
	return raftstore.MemberList{AnsweredBy: "cp1", FromLeader: true, Members: []raftstore.Member{
		{ID: "cp1", Address: "10.0.0.1:7950", Suffrage: "voter", Leader: true},
		{ID: "cp2", Address: "10.0.0.2:7950", Suffrage: "voter", LastContactMs: 4},
	}}, nil
}

func (f *fakeBackend) Remove(name string) error {
	f.removed = append(f.removed, name)
	return f.removeErr
}

func (f *fakeBackend) Backup(w io.Writer) (raftstore.BackupHeader, error) {
	if f.backup == nil {
		return raftstore.BackupHeader{}, errors.New("raft snapshot: nothing to snapshot yet")
	}
	_, err := w.Write(f.backup)
	return raftstore.BackupHeader{Node: "cp1", Index: 7}, err
}

// serve starts a server on a fresh socket and returns the socket's path.
func serve(t *testing.T, b Backend, allowed func(uint32) bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "admin.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Backend: b, Log: slog.New(slog.DiscardHandler), Allowed: allowed}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

func TestListenModes(t *testing.T) {
	path := serve(t, &fakeBackend{}, nil)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %s: %v %v", path, fi.Mode(), err)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("socket dir: %v %v", di.Mode(), err)
	}
	if _, err := Listen(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen on a live socket: %v", err)
	}
}

func TestListenReplacesStaleSocketOnly(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := Call(stale, Request{Op: OpMembers}, time.Second, nil); err == nil || !strings.Contains(err.Error(), "no agent listens") {
		t.Fatalf("call on a stale socket: %v", err)
	}
	ln, err = Listen(stale)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln.Close()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "x" {
		t.Fatal("Listen changed a regular file")
	}
}

func TestCallMissingSocket(t *testing.T) {
	_, err := Call(filepath.Join(t.TempDir(), "none.sock"), Request{Op: OpMembers}, time.Second, nil)
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "--admin-socket") {
		t.Fatalf("call on a missing socket: %v", err)
	}
}

func TestMembersAndRemove(t *testing.T) {
	b := &fakeBackend{}
	path := serve(t, b, nil)
	resp, err := Call(path, Request{Op: OpMembers}, time.Second, nil)
	if err != nil || resp.Members == nil || len(resp.Members.Members) != 2 || resp.Members.Members[1].LastContactMs != 4 {
		t.Fatalf("members: %+v %v", resp, err)
	}
	if _, err := Call(path, Request{Op: OpRemove, Name: "cp2"}, time.Second, nil); err != nil || len(b.removed) != 1 || b.removed[0] != "cp2" {
		t.Fatalf("remove: %v, backend saw %v", err, b.removed)
	}
	b.removeErr = errors.New(`remove "cp1": refused: it is the last voter`)
	if _, err := Call(path, Request{Op: OpRemove, Name: "cp1"}, time.Second, nil); err == nil || err.Error() != b.removeErr.Error() {
		t.Fatalf("refused remove: %v", err)
	}
	if _, err := Call(path, Request{Op: OpRemove}, time.Second, nil); err == nil || !strings.Contains(err.Error(), "empty member name") {
		t.Fatalf("remove without a name: %v", err)
	}
	if len(b.removed) != 2 {
		t.Fatalf("a removal without a name reached the backend: %v", b.removed)
	}
}

func TestSnapshotPayload(t *testing.T) {
	b := &fakeBackend{}
	path := serve(t, b, nil)
	if _, err := Call(path, Request{Op: OpSnapshot}, time.Second, nil); err == nil || !strings.Contains(err.Error(), "nothing to snapshot") {
		t.Fatalf("snapshot failing in the backend: %v", err)
	}
	b.backup = bytes.Repeat([]byte("0123456789abcdef\n"), 100_000)
	var got bytes.Buffer
	resp, err := Call(path, Request{Op: OpSnapshot}, 5*time.Second, &got)
	if err != nil || resp.Backup == nil || resp.Backup.Index != 7 || resp.Size != int64(len(b.backup)) || !bytes.Equal(got.Bytes(), b.backup) {
		t.Fatalf("snapshot: %+v %v, %d bytes", resp, err, got.Len())
	}
}

// rawCall sends raw bytes as a request and returns the decoded error.
func rawCall(t *testing.T, path string, raw []byte) string {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		_, _ = c.Write(raw)
		c.(*net.UnixConn).CloseWrite()
	}()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBadRequests(t *testing.T) {
	path := serve(t, &fakeBackend{}, nil)
	cases := map[string]struct {
		raw  []byte
		want string
	}{
		"not json":      {[]byte("hello\n"), "malformed request"},
		"unknown field": {[]byte(`{"op":"members","force":true}` + "\n"), `unknown field \"force\"`},
		"unknown op":    {[]byte(`{"op":"drop-tables"}` + "\n"), `unknown op \"drop-tables\"`},
		"no newline":    {[]byte(`{"op":"members"}`), "no complete line"},
		"too long":      {bytes.Repeat([]byte("a"), maxRequest+10), "request longer than"},
		"empty":         {nil, "no complete line"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := rawCall(t, path, tc.raw); !strings.Contains(got, tc.want) {
				t.Fatalf("answer %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPeerCredentialsDecide(t *testing.T) {
	b := &fakeBackend{}
	var seen []uint32
	path := serve(t, b, func(uid uint32) bool { seen = append(seen, uid); return false })
	_, err := Call(path, Request{Op: OpRemove, Name: "cp2"}, time.Second, nil)
	want := fmt.Sprintf("uid %d may not use it, only root", os.Geteuid())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("refused caller: %v, want %q", err, want)
	}
	if len(seen) != 1 || seen[0] != uint32(os.Geteuid()) {
		t.Fatalf("policy saw uids %v, want [%d]", seen, os.Geteuid())
	}
	if len(b.removed) != 0 {
		t.Fatalf("a refused caller reached the backend: %v", b.removed)
	}
}

// TestNobodyIsRefused runs a client as user nobody (needs root, as make test
// runs): the 0600 socket refuses it at connect, and when the file mode is
// opened up, SO_PEERCRED still does.
func TestNobodyIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs a client as nobody and needs root")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "raftvip-admin-nobody")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "admin.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b := &fakeBackend{}
	go (&Server{Backend: b, Log: slog.New(slog.DiscardHandler)}).Serve(ln)
	asNobody := func() string {
		cmd := exec.Command(bin)
		cmd.Env = []string{helperEnv + "=" + path}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client as nobody: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := asNobody(); !strings.Contains(out, "permission denied: run this as root") {
		t.Fatalf("nobody through the 0600 socket: %s", out)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if out := asNobody(); !strings.Contains(out, "uid 65534 may not use it, only root") {
		t.Fatalf("nobody through a world-writable socket: %s", out)
	}
	if _, err := Call(path, Request{Op: OpMembers}, time.Second, nil); err != nil {
		t.Fatalf("root through the same socket: %v", err)
	}
}

// TestListenRaceOneWinsOthersInUse: agents started together on one host race for
// the socket; exactly one serves it and every other one hears ErrInUse, never a
// bind error that would stop it.
func TestListenRaceOneWinsOthersInUse(t *testing.T) {
	for round := 0; round < 20; round++ {
		path := filepath.Join(t.TempDir(), "admin.sock")
		const n = 8
		errs := make(chan error, n)
		lns := make(chan net.Listener, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ln, err := Listen(path)
				if err == nil {
					lns <- ln
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		close(lns)
		won := 0
		for err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrInUse):
				t.Fatalf("round %d: %v, want ErrInUse", round, err)
			}
		}
		for ln := range lns {
			ln.Close()
		}
		if won != 1 {
			t.Fatalf("round %d: %d listeners won the socket, want 1", round, won)
		}
		// The winner closed: the socket is free again for the next agent.
		ln, err := Listen(path)
		if err != nil {
			t.Fatalf("round %d: Listen after the winner closed: %v", round, err)
		}
		ln.Close()
	}
}
