package raftstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// When a majority of the voters is gone for good the cluster cannot decide
// anything again by itself: no leader, so no VIP is announced. `raftvip
// recover` rebuilds a one-voter cluster offline, with the agent stopped, from
// either this node's own data dir (RecoverDataDir, hashicorp/raft's
// RecoverCluster) or a backup file restored into an empty data dir
// (RestoreBackup). The agent then starts on that data dir as the only voter
// and leads; the other nodes join it again with empty data dirs.

// Recovered says what a recovery produced.
type Recovered struct {
	Node    string `json:"node"`
	Address string `json:"address"`
	// Index and Term are the Raft position of the recovered state.
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	// Previous is the configuration the data dir or backup held before.
	Previous []Server `json:"previous"`
	State    State    `json:"-"`
}

// offlineStores is a data dir opened without a running node.
type offlineStores struct {
	dir   string
	store *raftboltdb.BoltStore
	snaps *raft.FileSnapshotStore
}

func (o *offlineStores) close() error { return o.store.Close() }

// openOffline opens dir's stores with the exclusive lock the agent holds, so a
// running agent makes it fail at once with an error saying so.
func openOffline(dir string, create bool) (*offlineStores, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir %s: %w", dir, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("data dir %s does not exist", dir)
	case err != nil:
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("data dir %s: not a directory", dir)
	}
	if err := CheckDataDir(dir); err != nil {
		return nil, offlineLockHint(err)
	}
	path := filepath.Join(dir, dbFile)
	store, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{Timeout: boltOpenTimeout}})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("raft store %s: locked by another process: stop the agent on this node first, raftvip recover runs offline", path)
	}
	if err != nil {
		return nil, fmt.Errorf("raft store %s: %w", path, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, snapshotRetain, newHCLogAdapter(slog.New(slog.DiscardHandler), "snapshot"))
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("snapshot store %s: %w", filepath.Join(dir, snapshotDir), err)
	}
	return &offlineStores{dir: dir, store: store, snaps: snaps}, nil
}

// offlineLockHint turns CheckDataDir's "locked" error into one that tells the
// operator to stop the agent.
func offlineLockHint(err error) error {
	if strings.Contains(err.Error(), "locked by another process") {
		return fmt.Errorf("%w: stop the agent on this node first, raftvip recover runs offline", err)
	}
	return err
}

// recoveryConfig is the raft configuration the offline steps need.
func recoveryConfig(id string) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(id)
	rc.Logger = newHCLogAdapter(slog.New(slog.DiscardHandler), "raft")
	return rc
}

// storedConfiguration reads the latest configuration in the stores, restoring
// the newest snapshot and replaying the log into a scratch FSM.
func (o *offlineStores) storedConfiguration(id string) ([]Server, error) {
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	cfg, err := raft.GetConfiguration(recoveryConfig(id), NewFSM(), o.store, o.store, o.snaps, trans)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: read the raft configuration: %w", o.dir, err)
	}
	var out []Server
	for _, s := range cfg.Servers {
		out = append(out, Server{ID: string(s.ID), Address: string(s.Address), Suffrage: suffrage(s.Suffrage)})
	}
	return out, nil
}

// addressOf picks the recovered node's raft address: the one given, else its
// own entry in the previous configuration.
func addressOf(id, given string, previous []Server, where string) (string, error) {
	if given != "" {
		return given, nil
	}
	i := slices.IndexFunc(previous, func(s Server) bool { return s.ID == id })
	if i < 0 {
		var names []string
		for _, s := range previous {
			names = append(names, s.ID)
		}
		return "", fmt.Errorf("node %q is not in the configuration of %s (members: %s): give its raft address", id, where, strings.Join(names, ", "))
	}
	return previous[i].Address, nil
}

// RecoverDataDir turns the Raft state in dir into a one-voter cluster of id at
// addr (empty: id's address in the stored configuration). Every committed
// entry the node has is kept; entries only the lost majority had are gone.
// The agent must be stopped.
func RecoverDataDir(dir, id, addr string) (Recovered, error) {
	if id == "" {
		return Recovered{}, errors.New("recover: empty node name")
	}
	o, err := openOffline(dir, false)
	if err != nil {
		return Recovered{}, err
	}
	defer o.close()
	has, err := raft.HasExistingState(o.store, o.store, o.snaps)
	if err != nil {
		return Recovered{}, fmt.Errorf("data dir %s: %w", dir, err)
	}
	if !has {
		return Recovered{}, fmt.Errorf("data dir %s holds no raft state: nothing to recover (restore a backup with --from-snapshot instead)", dir)
	}
	previous, err := o.storedConfiguration(id)
	if err != nil {
		return Recovered{}, err
	}
	addr, err = addressOf(id, addr, previous, "data dir "+dir)
	if err != nil {
		return Recovered{}, err
	}
	fsm := NewFSM()
	_, trans := raft.NewInmemTransport(raft.ServerAddress(addr))
	defer trans.Close()
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)}}}
	if err := raft.RecoverCluster(recoveryConfig(id), fsm, o.store, o.store, o.snaps, trans, conf); err != nil {
		return Recovered{}, fmt.Errorf("data dir %s: recover: %w", dir, err)
	}
	metas, err := o.snaps.List()
	if err != nil || len(metas) == 0 {
		return Recovered{}, fmt.Errorf("data dir %s: recover wrote no snapshot: %v", dir, err)
	}
	return Recovered{Node: id, Address: addr, Index: metas[0].Index, Term: metas[0].Term, Previous: previous, State: fsm.State()}, nil
}

// RestoreBackup writes the backup read from r into the empty data dir dir (it
// is created when missing) as the snapshot of a one-voter cluster of id at
// addr (empty: id's address in the backup's configuration). A data dir that
// already holds Raft state is refused: move it aside first.
func RestoreBackup(dir, id, addr string, r io.Reader) (Recovered, error) {
	if id == "" {
		return Recovered{}, errors.New("restore: empty node name")
	}
	h, body, st, err := ReadBackup(r)
	if err != nil {
		return Recovered{}, err
	}
	addr, err = addressOf(id, addr, h.Servers, "the backup")
	if err != nil {
		return Recovered{}, err
	}
	o, err := openOffline(dir, true)
	if err != nil {
		return Recovered{}, err
	}
	defer o.close()
	has, err := raft.HasExistingState(o.store, o.store, o.snaps)
	if err != nil {
		return Recovered{}, fmt.Errorf("data dir %s: %w", dir, err)
	}
	if has {
		return Recovered{}, fmt.Errorf("data dir %s already holds raft state: restore into an empty data dir (move this one aside), or recover from it without --from-snapshot", dir)
	}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(addr))
	defer trans.Close()
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)}}}
	sink, err := o.snaps.Create(raft.SnapshotVersionMax, h.Index, h.Term, conf, 1, trans)
	if err != nil {
		return Recovered{}, fmt.Errorf("data dir %s: create snapshot: %w", dir, err)
	}
	if _, err := io.Copy(sink, bytes.NewReader(body)); err != nil {
		_ = sink.Cancel()
		return Recovered{}, fmt.Errorf("data dir %s: write snapshot: %w", dir, err)
	}
	if err := sink.Close(); err != nil {
		return Recovered{}, fmt.Errorf("data dir %s: finish snapshot: %w", dir, err)
	}
	// The node goes on in the backup's term, so its own entries never carry a
	// term older than the snapshot's.
	if err := o.store.SetUint64([]byte("CurrentTerm"), h.Term); err != nil {
		return Recovered{}, fmt.Errorf("data dir %s: write the current term: %w", dir, err)
	}
	return Recovered{Node: id, Address: addr, Index: h.Index, Term: h.Term, Previous: h.Servers, State: st}, nil
}
