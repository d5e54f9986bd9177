package raftstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

const (
	// transportTimeout is the I/O deadline of one Raft RPC (snapshots get
	// more, scaled by size). It only bounds how long a dead peer's
	// replication goroutine waits; other peers are unaffected.
	transportTimeout = 5 * time.Second
	// transportMaxPool is how many idle connections per peer are kept.
	transportMaxPool = 3
	// logCacheSize keeps recent entries in memory so replication to
	// followers does not read them back from bolt.
	logCacheSize = 512
	// membershipTimeout bounds enqueueing a configuration change.
	membershipTimeout = 10 * time.Second
	// defaultShutdownTimeout is used when Shutdown gets no positive timeout.
	defaultShutdownTimeout = 5 * time.Second
)

// ErrNotLeader is returned by operations only the leader may perform. It
// is raft's own error value, so errors.Is works on errors from either.
var ErrNotLeader = raft.ErrNotLeader

// ErrLeadershipLost means leadership was lost while a command was in
// flight: it may or may not have been committed. Re-read the state.
var ErrLeadershipLost = raft.ErrLeadershipLost

// ErrApplyTimeout means Apply gave up waiting; the command may still
// commit. Re-read the state before retrying.
var ErrApplyTimeout = errors.New("not applied in time, outcome unknown")

// Peer is one voter of the initial cluster: its node ID and the host:port
// other peers dial.
type Peer struct {
	ID      string
	Address string
}

// Timeouts are the Raft timing knobs. A zero field means its default from
// DefaultTimeouts.
type Timeouts struct {
	// Heartbeat is how long a follower waits without hearing from the
	// leader before it starts an election; the leader heartbeats every
	// tenth of it.
	Heartbeat time.Duration
	// LeaderLoss is how long a voter waits without hearing from the leader
	// before it campaigns, in place of raft's randomised re-check of
	// Heartbeat; voters take turns after it (leaderloss.go). At most
	// Heartbeat, at least LeaderLease.
	LeaderLoss time.Duration
	// Election is how long a candidate waits for votes before trying again.
	Election time.Duration
	// LeaderLease is how long a leader keeps leading without hearing from a
	// quorum. raft requires it to be at most Heartbeat.
	LeaderLease time.Duration
	// Commit is the longest a follower waits to learn that an entry
	// committed when no further entries flow.
	Commit time.Duration
	// SnapshotInterval is how often raft checks whether to snapshot.
	SnapshotInterval time.Duration
	// SnapshotThreshold is how many new entries trigger a snapshot.
	SnapshotThreshold uint64
	// TrailingLogs is how many entries are kept behind a snapshot, so a
	// briefly absent follower catches up from the log, not a snapshot.
	TrailingLogs uint64
}

// DefaultTimeouts returns timeouts for nodes on one L2 segment, aiming at
// sub-second VIP failover without spurious elections:
//
//   - LeaderLoss 50ms: a voter that has not heard from the leader for 50ms
//     campaigns in its slot, 50, 60, 70 or 80ms after the last contact with
//     three voters (leaderloss.go). Leaders heartbeat every 10-20ms, so the
//     leader must miss three to five heartbeats to both survivors.
//   - Heartbeat 100ms: only the fallback behind LeaderLoss, and the leader's
//     heartbeat cadence (a tenth of it).
//   - Election 100ms: after a split vote the next round starts within
//     100-200ms; pre-vote keeps a cut-off node from disturbing the rest.
//   - LeaderLease 40ms: the leader speaks for the control-plane VIPs for
//     40ms after the start of the last VerifyLeader a quorum answered, and
//     raft steps it down after 40ms without a quorum. No voter campaigns
//     before LeaderLoss after its last contact, so with the announce loop's
//     10ms check the old leader is silent before a new one can win.
//   - Commit 10ms: followers learn the commit index of the last entry
//     within 10-20ms instead of raft's 50-100ms, so a follower that is
//     handed a VIP starts announcing it sooner.
//   - Snapshots every 30s when 1024 entries accumulated, keeping 10240
//     entries behind: the state is small (a few hundred KB for a thousand
//     services) and short outages catch up from the log.
//
// Measured numbers are in docs/operations.md ("Timeouts").
func DefaultTimeouts() Timeouts {
	return Timeouts{
		Heartbeat:         100 * time.Millisecond,
		Election:          100 * time.Millisecond,
		LeaderLoss:        50 * time.Millisecond,
		LeaderLease:       40 * time.Millisecond,
		Commit:            10 * time.Millisecond,
		SnapshotInterval:  30 * time.Second,
		SnapshotThreshold: 1024,
		TrailingLogs:      10240,
	}
}

// withDefaults fills zero fields from DefaultTimeouts.
func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts()
	if t.Heartbeat == 0 {
		t.Heartbeat = d.Heartbeat
	}
	if t.Election == 0 {
		t.Election = d.Election
	}
	if t.LeaderLoss == 0 {
		t.LeaderLoss = max(t.Heartbeat*d.LeaderLoss/d.Heartbeat, t.LeaderLease)
	}
	if t.LeaderLease == 0 {
		t.LeaderLease = min(d.LeaderLease, t.LeaderLoss)
	}
	if t.Commit == 0 {
		t.Commit = d.Commit
	}
	if t.SnapshotInterval == 0 {
		t.SnapshotInterval = d.SnapshotInterval
	}
	if t.SnapshotThreshold == 0 {
		t.SnapshotThreshold = d.SnapshotThreshold
	}
	if t.TrailingLogs == 0 {
		t.TrailingLogs = d.TrailingLogs
	}
	return t
}

// Config is what Open needs to start a node.
type Config struct {
	// NodeID is this node's Raft server ID (the node name); stable forever.
	NodeID string
	// BindAddr is the host:port to listen on.
	BindAddr string
	// AdvertiseAddr is the host:port peers dial; empty means BindAddr,
	// which must then not be a wildcard.
	AdvertiseAddr string
	// DataDir holds raft.db (log and stable store) and snapshots/.
	DataDir string
	// Peers is the initial voter set including this node. It is used only
	// to bootstrap a node without existing state; afterwards membership
	// lives in the Raft log. Empty means a joiner waiting to be added.
	Peers []Peer
	// ClusterCheck lists addresses (--join, the other --peer voters) asked at start
	// of a node whose data dir records a cluster ID: if a raftvip cluster with
	// another ID answers at any of them, Open refuses (ErrForeignCluster).
	ClusterCheck []string
	// Probe lists addresses (--join with --bootstrap) asked before bootstrapping:
	// if a raftvip cluster answers at any of them, Open refuses to bootstrap a
	// second one. Unreachable addresses and non-raftvip answers do not count.
	Probe []string
	// ControlPlane makes a joiner (no Peers) ask to be promoted to voter once it
	// has caught up; its certificate must be a control-plane one (join.go).
	ControlPlane bool
	// MaxNonvoters caps the nonvoters workers may join as, on the leader; zero
	// means DefaultMaxNonvoters. Joins past it are refused (join.go).
	MaxNonvoters int
	// TLS is the mutual TLS configuration (see MutualTLSConfig) used for
	// both accepting and dialling. Nil means plain TCP: labs only.
	TLS *tls.Config
	// Timeouts tunes Raft; zero fields take DefaultTimeouts.
	Timeouts Timeouts
	// Logger receives the node's logs and raft's warnings; nil means
	// slog.Default().
	Logger *slog.Logger
}

func (c *Config) validate() error {
	if c.NodeID == "" {
		return errors.New("raft: empty node ID")
	}
	if c.BindAddr == "" {
		return errors.New("raft: empty bind address")
	}
	if c.DataDir == "" {
		return errors.New("raft: empty data dir")
	}
	ids := map[string]bool{}
	addrs := map[string]bool{}
	self := false
	for _, p := range c.Peers {
		if p.ID == "" || p.Address == "" {
			return fmt.Errorf("raft peer %q=%q: empty ID or address", p.ID, p.Address)
		}
		if ids[p.ID] {
			return fmt.Errorf("raft peer %q listed twice", p.ID)
		}
		if addrs[p.Address] {
			return fmt.Errorf("raft peer address %q listed twice", p.Address)
		}
		ids[p.ID], addrs[p.Address] = true, true
		self = self || p.ID == c.NodeID
	}
	if len(c.Peers) > 0 && !self {
		return fmt.Errorf("raft peers do not include this node %q", c.NodeID)
	}
	return nil
}

// Node is a running Raft member: it replicates commands into its FSM and
// reports leadership. All methods are safe for concurrent use.
type Node struct {
	id     string
	logger *slog.Logger
	hclog  *hclogAdapter
	timing Timeouts
	raft   *raft.Raft
	fsm    *FSM
	store  *raftboltdb.BoltStore
	logs   raft.LogStore
	snaps  *raft.FileSnapshotStore
	trans  *raft.NetworkTransport
	// mux shares the Raft port with forwarded requests (see forward.go).
	mux     *muxLayer
	metrics *nodeMetrics
	// fwdLimit rate-limits forwarded requests per peer (forwardlimit.go).
	fwdLimit *peerLimiter
	// caps is what forwarded requests said their senders support (versions.go).
	caps capabilities
	// barrier records whether this leader committed an entry of its term
	// (barrier.go).
	barrier termBarrier

	// bootstrapped records whether Open bootstrapped a new cluster.
	bootstrapped bool
	// mem is the join and promotion bookkeeping (join.go, promote.go).
	mem *memberState
	// idRecord is the cluster ID the data dir records (clusterid.go).
	idRecord clusterIDRecord
	// started is set once raft runs; forwarded requests wait for it.
	started atomic.Bool
	// leaderSince is when this node last became leader: monotonic nanoseconds
	// since the mux's epoch (leaderSinceTime), so a clock step cannot make a new
	// leader look old; 0 before it ever led.
	leaderSince atomic.Int64

	observer *raft.Observer
	obsCh    chan raft.Observation
	leaderCh chan bool
	done     chan struct{}
	pumpDone chan struct{}

	shutdownOnce sync.Once
	shutdownErr  error
}

// Open starts a node from cfg.DataDir, creating it if needed. A data dir
// without Raft state and a Peers list containing this node bootstraps the
// cluster; existing state is never bootstrapped again.
func Open(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "raft", "node", cfg.NodeID)
	n := &Node{
		id:       cfg.NodeID,
		logger:   logger,
		hclog:    newHCLogAdapter(logger, "raft"),
		timing:   cfg.Timeouts.withDefaults(),
		fsm:      NewFSM(),
		obsCh:    make(chan raft.Observation, 256),
		leaderCh: make(chan bool, 16),
		done:     make(chan struct{}),
		pumpDone: make(chan struct{}),
		fwdLimit: newPeerLimiter(forwardRate, forwardBurst, forwardLimiterMax),
		mem:      newMemberState(cfg),
	}
	rc, err := n.raftConfig()
	if err != nil {
		return nil, err
	}
	if err := n.openStores(cfg.DataDir); err != nil {
		return nil, err
	}
	stream, err := newStreamLayer(cfg.BindAddr, cfg.AdvertiseAddr, cfg.TLS, logger)
	if err != nil {
		n.store.Close()
		return nil, err
	}
	n.mux = newMuxLayer(stream, n.serveForward, logger)
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  n.mux,
		MaxPool: transportMaxPool,
		Timeout: transportTimeout,
		Logger:  n.hclog.Named("transport"),
	})
	if err := n.start(rc, cfg); err != nil {
		n.trans.Close()
		n.store.Close()
		return nil, err
	}
	return n, nil
}

func (n *Node) raftConfig() (*raft.Config, error) {
	t := n.timing
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.id)
	rc.HeartbeatTimeout = t.Heartbeat
	rc.ElectionTimeout = t.Election
	rc.LeaderLeaseTimeout = t.LeaderLease
	rc.CommitTimeout = t.Commit
	rc.SnapshotInterval = t.SnapshotInterval
	rc.SnapshotThreshold = t.SnapshotThreshold
	rc.TrailingLogs = t.TrailingLogs
	rc.NoSnapshotRestoreOnStart = false
	rc.Logger = n.hclog
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("raft timeouts %+v: %w", t, err)
	}
	if t.LeaderLoss < t.LeaderLease || t.LeaderLoss > t.Heartbeat {
		return nil, fmt.Errorf("raft timeouts %+v: LeaderLoss must lie between LeaderLease and Heartbeat", t)
	}
	return rc, nil
}

func (n *Node) openStores(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, dbFile)
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        path,
		BoltOptions: &bbolt.Options{Timeout: boltOpenTimeout},
	})
	if errors.Is(err, bbolt.ErrTimeout) {
		return fmt.Errorf("raft store %s: locked by another process (is another raftvip using this data dir?)", path)
	}
	if err != nil {
		return fmt.Errorf("raft store %s: %w", path, err)
	}
	logs, err := raft.NewLogCache(logCacheSize, store)
	if err != nil {
		store.Close()
		return fmt.Errorf("raft log cache: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, snapshotRetain, n.hclog.Named("snapshot"))
	if err != nil {
		store.Close()
		return fmt.Errorf("snapshot store %s: %w", filepath.Join(dir, snapshotDir), err)
	}
	id, err := ReadClusterID(dir)
	if err != nil {
		store.Close()
		return err
	}
	n.store, n.logs, n.snaps = store, logs, snaps
	n.fsm.snapshotIndex = n.newestSnapshotIndex
	n.idRecord = clusterIDRecord{dir: dir, id: id}
	n.fsm.onClusterID = n.recordClusterID
	n.fsm.onHalt = n.noteHalt
	return nil
}

// newestSnapshotIndex is the index of the newest snapshot in the store: the one
// raft restores, at start and after InstallSnapshot alike.
func (n *Node) newestSnapshotIndex() uint64 {
	metas, err := n.snaps.List()
	if err != nil || len(metas) == 0 {
		return 0
	}
	return metas[0].Index
}

func (n *Node) start(rc *raft.Config, cfg Config) error {
	existing, err := raft.HasExistingState(n.logs, n.store, n.snaps)
	if err != nil {
		return fmt.Errorf("raft: read existing state in %s: %w", cfg.DataDir, err)
	}
	switch {
	case existing:
		if err := n.checkClusterAt(cfg.ClusterCheck); err != nil {
			return err
		}
	case len(cfg.Peers) > 0:
		// The ID is written before raft starts: a peer that bootstraps later in
		// the same cluster may replicate to this node the moment it listens.
		id, err := bootstrapClusterID(cfg.Peers)
		if err == nil {
			err = writeClusterID(cfg.DataDir, id)
		}
		if err != nil {
			return fmt.Errorf("raft: bootstrap: %w", err)
		}
		n.idRecord.id = id
	default:
		// A dir without raft state holds nothing of any cluster.
		n.idRecord.id = ""
	}
	r, err := raft.NewRaft(rc, n.fsm, n.logs, n.store, n.snaps, n.trans)
	if err != nil {
		return fmt.Errorf("raft: start: %w", err)
	}
	n.raft = r
	n.started.Store(true)
	n.guardRaft()
	n.metrics = newNodeMetrics(n)
	n.observer = raft.NewObserver(n.obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.RaftState, raft.LeaderObservation, raft.FailedHeartbeatObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(n.observer)
	n.mem.startedEmpty = !existing && len(cfg.Peers) == 0
	go n.pump()
	go n.promoteLoop()
	go n.leaderLossLoop()

	switch {
	case existing:
		n.logger.Info("raft state found, resuming", "data_dir", cfg.DataDir, "last_index", r.LastIndex())
	case len(cfg.Peers) == 0:
		n.logger.Info("no raft state and no peers: waiting to be added to a cluster", "data_dir", cfg.DataDir)
	default:
		if err := n.probeBeforeBootstrap(cfg.Probe); err != nil {
			n.stopRaft(time.Second)
			return err
		}
		servers := make([]raft.Server, len(cfg.Peers))
		for i, p := range cfg.Peers {
			servers[i] = raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address)}
			if p.ID == n.id && p.Address != string(n.trans.LocalAddr()) {
				n.logger.Warn("this node's peer address differs from its advertised address; peers dial the peer address",
					"peer_address", p.Address, "advertise_address", n.trans.LocalAddr())
			}
		}
		err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
		if errors.Is(err, raft.ErrCantBootstrap) && len(cfg.Peers) > 1 {
			// Peers started together: one that bootstrapped first already leads and
			// reached this node the moment raft listened. This dir held no state when
			// start looked, so whatever raft holds now came from that peer: its first
			// AppendEntries may have stored only its term (the log follows on the
			// retry), so the last index can still be 0.
			n.logger.Info("a peer reached this node before it bootstrapped; following it", "last_index", r.LastIndex())
			return nil
		}
		if err != nil {
			n.stopRaft(time.Second)
			return fmt.Errorf("raft: bootstrap: %w", err)
		}
		n.bootstrapped = true
		n.logger.Info("bootstrapped new raft cluster", "voters", len(servers), "cluster_id", n.ClusterID())
	}
	return nil
}

// Apply replicates c and waits until it is applied on this (leader) node,
// at most timeout (no bound when not positive). It returns ErrNotLeader on
// followers, ErrLeadershipLost or ErrApplyTimeout when the outcome is
// unknown (re-read the state before retrying), and the FSM's error when the
// command was rejected.
func (n *Node) Apply(c Command, timeout time.Duration) error {
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	if h := n.fsm.Halted(); h != nil {
		return fmt.Errorf("raft apply %s: %w: %s", c.Type(), ErrHalted, h)
	}
	c, err := n.gate(c)
	if err != nil {
		return err
	}
	data, err := Encode(c)
	if err != nil {
		return err
	}
	start := time.Now()
	f := n.raft.Apply(data, timeout)
	res := make(chan error, 1)
	go func() { res <- f.Error() }()
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case err := <-res:
		if err != nil {
			return fmt.Errorf("raft apply %s: %w", c.Type(), err)
		}
	case <-expired:
		return fmt.Errorf("raft apply %s: %w after %s", c.Type(), ErrApplyTimeout, timeout)
	}
	n.metrics.applyLatency.Observe(time.Since(start).Seconds())
	if err, ok := f.Response().(error); ok && err != nil {
		return err
	}
	return nil
}

// State returns a deep copy of the replicated state as applied here. Its
// AppliedIndex is the log index the copy reflects; Covers says whether that copy
// is recent enough to act on.
func (n *Node) State() State { return n.fsm.State() }

// maxCoverScan bounds how many log entries Covers inspects.
const maxCoverScan = 1024

// Covers reports whether a state copy taken at stateIndex holds every change
// committed up to target. Entries that never reach the FSM (the new leader's
// no-op, barriers) leave the copy's index behind target without changing the
// state, so those are skipped; any command or configuration entry in between
// means the copy is stale.
func (n *Node) Covers(stateIndex, target uint64) bool {
	if stateIndex >= target {
		return true
	}
	if n.raft.AppliedIndex() < target || target-stateIndex > maxCoverScan {
		return false
	}
	for i := stateIndex + 1; i <= target; i++ {
		var l raft.Log
		if err := n.logs.GetLog(i, &l); err != nil {
			return false
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return false
		}
	}
	return true
}

// Changed returns a channel closed at the next applied change or restore;
// see FSM.Changed.
func (n *Node) Changed() <-chan struct{} { return n.fsm.Changed() }

// IsLeader reports whether this node is the leader right now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// LeadershipChanges delivers true when this node becomes leader and false
// when it stops being leader (including at Shutdown), in order. It is fed
// from raft observations, not raft's LeaderCh (which drops values): a slow
// reader loses nothing unless it falls more than 64 transitions behind, and
// then only the oldest true/false pairs, so the last value is always the
// current one. The channel is never closed.
func (n *Node) LeadershipChanges() <-chan bool { return n.leaderCh }

// Leader returns the ID and address of the leader this node knows of, or
// empty strings during an election.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// LastContact is when this node last heard from a leader. A leader returns
// now: raft steps it down as soon as its lease on a quorum runs out.
func (n *Node) LastContact() time.Time {
	if n.IsLeader() {
		return time.Now()
	}
	return n.raft.LastContact()
}

// VerifyLeader confirms with a quorum that this node is still the leader.
func (n *Node) VerifyLeader() error {
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return fmt.Errorf("raft verify leader: %w", err)
	}
	return nil
}

// Snapshot takes a snapshot now and compacts the log. A node with nothing
// new since its last snapshot succeeds without writing one.
func (n *Node) Snapshot() error {
	err := n.raft.Snapshot().Error()
	if err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return fmt.Errorf("raft snapshot: %w", err)
	}
	return nil
}

// Shutdown stops the node within timeout (a default when not positive). A
// leader first hands leadership to another voter, bounded by half the
// timeout, so the cluster does not wait out an election; then raft stops
// and the stores close. Later calls return the first call's result.
func (n *Node) Shutdown(timeout time.Duration) error {
	n.shutdownOnce.Do(func() { n.shutdownErr = n.shutdown(timeout, true) })
	return n.shutdownErr
}

func (n *Node) shutdown(timeout time.Duration, transfer bool) error {
	if timeout <= 0 {
		timeout = defaultShutdownTimeout
	}
	deadline := time.Now().Add(timeout)
	if transfer && n.IsLeader() && n.hasOtherVoters() {
		n.transferForShutdown(timeout / 2)
	}
	if err := n.stopRaft(time.Until(deadline)); err != nil {
		return err
	}
	return n.store.Close()
}

func (n *Node) hasOtherVoters() bool {
	servers, err := n.Servers()
	if err != nil {
		return false
	}
	for _, s := range servers {
		if s.ID != n.id && s.Suffrage == SuffrageVoter {
			return true
		}
	}
	return false
}

func (n *Node) transferForShutdown(limit time.Duration) {
	start := time.Now()
	f := n.raft.LeadershipTransfer()
	res := make(chan error, 1)
	go func() { res <- f.Error() }()
	select {
	case err := <-res:
		if err != nil {
			n.logger.Warn("leadership transfer before shutdown failed", "error", err)
			return
		}
		id, _ := n.Leader()
		n.logger.Info("leadership transferred before shutdown", "took", time.Since(start), "new_leader", id)
	case <-time.After(limit):
		n.logger.Warn("leadership transfer before shutdown timed out", "limit", limit)
	}
}

// stopRaft shuts raft down (which also closes the transport) and stops the
// observation pump.
func (n *Node) stopRaft(limit time.Duration) error {
	res := make(chan error, 1)
	f := n.raft.Shutdown()
	go func() { res <- f.Error() }()
	select {
	case err := <-res:
		n.raft.DeregisterObserver(n.observer)
		close(n.done)
		<-n.pumpDone
		if err != nil {
			return fmt.Errorf("raft shutdown: %w", err)
		}
		return nil
	case <-time.After(limit):
		return fmt.Errorf("raft shutdown: not finished after %s", limit)
	}
}
