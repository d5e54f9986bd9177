package raftstore

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func wantCheckError(t *testing.T, dir string, parts ...string) {
	t.Helper()
	err := CheckDataDir(dir)
	if err == nil {
		t.Fatalf("CheckDataDir(%s) = nil", dir)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("CheckDataDir(%s) = %q, want it to mention %q", dir, err, p)
		}
	}
}

func TestCheckDataDirAcceptsFreshDirs(t *testing.T) {
	base := t.TempDir()
	for _, dir := range []string{base, filepath.Join(base, "not", "yet", "created")} {
		if err := CheckDataDir(dir); err != nil {
			t.Errorf("CheckDataDir(%s) = %v", dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(base, "not")); !os.IsNotExist(err) {
		t.Fatal("CheckDataDir created directories")
	}
	empty := filepath.Join(base, "empty")
	writeFile(t, filepath.Join(empty, dbFile), nil)
	if err := CheckDataDir(empty); err != nil {
		t.Errorf("empty raft.db (bolt initializes it): %v", err)
	}
	if err := CheckDataDir(""); err == nil {
		t.Error("empty path accepted")
	}
}

func TestCheckDataDirRejectsNonDirectories(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	writeFile(t, file, []byte("x"))
	wantCheckError(t, file, file, "not a directory")
	wantCheckError(t, filepath.Join(file, "sub"), file, "not a directory")

	dbDir := filepath.Join(base, "dbdir")
	if err := os.MkdirAll(filepath.Join(dbDir, dbFile), 0o700); err != nil {
		t.Fatal(err)
	}
	wantCheckError(t, dbDir, filepath.Join(dbDir, dbFile), "is a directory")

	snapFile := filepath.Join(base, "snapfile")
	writeFile(t, filepath.Join(snapFile, snapshotDir), []byte("x"))
	wantCheckError(t, snapFile, filepath.Join(snapFile, snapshotDir), "not a directory")
}

func TestCheckDataDirRejectsCorruptStore(t *testing.T) {
	garbage := make([]byte, 64<<10)
	if _, err := rand.Read(garbage); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"random 64KiB": garbage,
		"short text":   []byte("this is not a bolt database"),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, dbFile)
			writeFile(t, path, b)
			wantCheckError(t, dir, path)
			after, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(after, b) {
				t.Fatal("CheckDataDir modified the corrupt file")
			}
		})
	}
}

func TestCheckDataDirRejectsForeignBoltFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, dbFile)
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucket([]byte("something-else"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	wantCheckError(t, dir, path, "not a raft store")
}

func TestCheckDataDirOnRealStore(t *testing.T) {
	c := newCluster(t, 1, nil, DefaultTimeouts())
	c.leader()
	for i := 0; i < 5; i++ {
		c.apply(allocation(i))
	}
	dir := c.cfgs["n1"].DataDir
	path := filepath.Join(dir, dbFile)
	wantCheckError(t, dir, path, "locked by another process")

	c.kill("n1")
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if err := CheckDataDir(dir); err != nil {
		t.Fatalf("CheckDataDir on a healthy store: %v", err)
	}
	after, _ := os.ReadFile(path)
	fi2, _ := os.Stat(path)
	if !bytes.Equal(before, after) || !fi.ModTime().Equal(fi2.ModTime()) {
		t.Fatal("CheckDataDir modified raft.db")
	}
}

// TestCheckDataDirUnwritable needs a directory its process cannot write.
// Root ignores permission bits, so as root the check runs in a child
// process with its own mount namespace and a read-only tmpfs; the host's
// mounts are untouched.
func TestCheckDataDirUnwritable(t *testing.T) {
	if dir := os.Getenv("RAFTSTORE_RO_CHILD"); dir != "" {
		if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_RDONLY, "size=1m"); err != nil {
			t.Fatalf("mount read-only tmpfs: %v", err)
		}
		assertUnwritable(t, dir)
		os.Stdout.WriteString("RO-CHILD-CHECKED\n")
		return
	}
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		assertUnwritable(t, dir)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCheckDataDirUnwritable$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "RAFTSTORE_RO_CHILD="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := runBounded(cmd)
	if err != nil || !strings.Contains(string(out), "RO-CHILD-CHECKED") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func assertUnwritable(t *testing.T, dir string) {
	t.Helper()
	wantCheckError(t, dir, dir, "not writable")
	sub := filepath.Join(dir, "raftvip")
	wantCheckError(t, sub, sub, dir, "not writable")
}

func runBounded(cmd *exec.Cmd) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-time.After(waitTimeout):
		cmd.Process.Kill()
		<-done
		return out.Bytes(), os.ErrDeadlineExceeded
	}
}
