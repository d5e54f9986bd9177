package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

const (
	// dbFile is the bolt file that holds both the Raft log and the stable
	// store (current term, last vote).
	dbFile = "raft.db"
	// snapshotDir is where the file snapshot store keeps its snapshots.
	snapshotDir = "snapshots"
	// snapshotRetain is how many snapshots are kept: the newest, and one
	// to fall back on if the newest turns out unreadable.
	snapshotRetain = 2
	// boltOpenTimeout bounds waiting for bolt's file lock. Another raftvip
	// holding the data dir is a configuration error to report, not to wait
	// out.
	boltOpenTimeout = time.Second
)

// CheckDataDir verifies, without changing anything, that dir can hold a
// node's data: it is (or can be created as) a writable directory, and an
// existing raft.db opens read-only as a bolt database with the Raft buckets
// and passes bolt's consistency check. The agent calls it before starting so
// a bad disk or a stray file stops it with one line naming the file.
func CheckDataDir(dir string) error {
	if dir == "" {
		return errors.New("data dir: empty path")
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return checkCreatable(dir)
	case err != nil:
		return fmt.Errorf("data dir %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("data dir %s: not a directory", dir)
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("data dir %s: not writable: %w", dir, err)
	}
	snaps := filepath.Join(dir, snapshotDir)
	if fi, err := os.Stat(snaps); err == nil && !fi.IsDir() {
		return fmt.Errorf("snapshot dir %s: not a directory", snaps)
	}
	return checkBoltFile(filepath.Join(dir, dbFile))
}

// checkCreatable walks up to the nearest existing ancestor, which must be a
// writable directory for Open to create dir.
func checkCreatable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("data dir %s: %w", dir, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("data dir %s: %s is not a directory", dir, p)
		}
		if err := unix.Access(p, unix.W_OK|unix.X_OK); err != nil {
			return fmt.Errorf("data dir %s does not exist and %s is not writable: %w", dir, p, err)
		}
		return nil
	}
}

// checkBoltFile opens path read-only (shared lock, bounded wait) and checks
// it. A missing or empty file is fine: bolt initializes it on first open.
func checkBoltFile(path string) (err error) {
	fi, statErr := os.Stat(path)
	switch {
	case errors.Is(statErr, fs.ErrNotExist):
		return nil
	case statErr != nil:
		return fmt.Errorf("raft store %s: %w", path, statErr)
	case fi.IsDir():
		return fmt.Errorf("raft store %s: is a directory", path)
	case fi.Size() == 0:
		return nil
	}
	// bolt trusts its file's page headers: garbage can make it panic or
	// fault on its memory map. Both become an error naming the file.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("raft store %s: corrupt: %v", path, r)
		}
	}()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: boltOpenTimeout})
	if errors.Is(err, bbolt.ErrTimeout) {
		return fmt.Errorf("raft store %s: locked by another process (is another raftvip using this data dir?)", path)
	}
	if err != nil {
		return fmt.Errorf("raft store %s: corrupt or not a bolt database: %w", path, err)
	}
	defer db.Close()
	if err := db.View(walkRaftBuckets); err != nil {
		return fmt.Errorf("raft store %s: %w", path, err)
	}
	return nil
}

// walkRaftBuckets reads every page of the log and stable-store buckets and
// checks that log keys are 8-byte indexes without gaps, as raft-boltdb
// writes them. bolt's own Tx.Check runs in a goroutine of its own, where a
// panic on a corrupt page could not be recovered, so the walk is done here.
func walkRaftBuckets(tx *bbolt.Tx) error {
	logs := tx.Bucket([]byte("logs"))
	conf := tx.Bucket([]byte("conf"))
	if logs == nil || conf == nil {
		return errors.New("no logs and conf buckets, not a raft store")
	}
	var prev uint64
	c := logs.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) != 8 {
			return fmt.Errorf("log key %x is not an 8-byte index", k)
		}
		idx := binary.BigEndian.Uint64(k)
		if prev != 0 && idx != prev+1 {
			return fmt.Errorf("log has a gap between index %d and %d", prev, idx)
		}
		prev = idx
	}
	return conf.ForEach(func(k, v []byte) error { return nil })
}
