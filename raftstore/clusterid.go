package raftstore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Every cluster has an ID, so a node never mixes the data of two clusters: a
// data dir that belongs to another cluster is refused when the node starts next
// to a cluster with a different ID and when it asks that cluster to join.
//
// The ID is born when a node bootstraps and is written to the data dir
// (clusterIDFile) before the bootstrap. A lone --bootstrap node draws a random
// one. Peers bootstrapped all at once (--peer) must agree without talking, so
// they derive it from the sorted peer list: every peer computes the same ID. The
// first leader that finds no ID in the replicated state commits the one its data
// dir holds (SetClusterID); the FSM keeps the first committed ID forever, and
// snapshots carry it to joiners, which record it in their own data dir.

// clusterIDFile, in the data dir, holds the ID of the cluster the dir belongs to.
const clusterIDFile = "cluster-id"

// ErrForeignCluster refuses a node whose data dir belongs to another cluster than
// the one it is asked to run in.
var ErrForeignCluster = errors.New("refusing to mix the data of two clusters")

// SetClusterID commits the cluster's ID. Only the first one committed counts:
// the FSM ignores a later one, so two leaders racing to commit theirs cannot
// leave nodes disagreeing.
type SetClusterID struct {
	ID string `json:"id"`
}

// Type implements Command.
func (SetClusterID) Type() CommandType { return TypeClusterID }

func (c SetClusterID) validate() error {
	if err := validClusterID(c.ID); err != nil {
		return invalid(c.Type(), "%v", err)
	}
	return nil
}

func (c SetClusterID) apply(s *State) {
	if s.ClusterID == "" {
		s.ClusterID = c.ID
	}
}

// validClusterID accepts what newClusterID and peersClusterID produce: 32 hex
// digits in the 8-4-4-4-12 grouping.
func validClusterID(id string) error {
	parts := strings.Split(id, "-")
	if len(parts) != 5 || len(parts[0]) != 8 || len(parts[1]) != 4 || len(parts[2]) != 4 || len(parts[3]) != 4 || len(parts[4]) != 12 {
		return fmt.Errorf("cluster id %q: want 8-4-4-4-12 hex digits", id)
	}
	if _, err := hex.DecodeString(strings.Join(parts, "")); err != nil || strings.ToLower(id) != id {
		return fmt.Errorf("cluster id %q: want lower-case hex digits", id)
	}
	return nil
}

func formatClusterID(b []byte) string {
	h := hex.EncodeToString(b[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// newClusterID draws a random ID for a cluster bootstrapped by one node.
func newClusterID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("cluster id: %w", err)
	}
	return formatClusterID(b), nil
}

// peersClusterID is the ID every peer of an all-at-once bootstrap computes alike:
// a hash of the sorted NAME=ADDRESS list.
func peersClusterID(peers []Peer) string {
	lines := make([]string, len(peers))
	for i, p := range peers {
		lines[i] = p.ID + "=" + p.Address
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte("raftvip cluster\n" + strings.Join(lines, "\n")))
	return formatClusterID(sum[:])
}

// bootstrapClusterID is the ID a bootstrapping node proposes: random for a lone
// node, derived from the peer list when several bootstrap together.
func bootstrapClusterID(peers []Peer) (string, error) {
	if len(peers) == 1 {
		return newClusterID()
	}
	return peersClusterID(peers), nil
}

// ReadClusterID returns the cluster ID recorded in dir, "" when none is (a new
// dir, or one written before clusters had IDs).
func ReadClusterID(dir string) (string, error) {
	path := filepath.Join(dir, clusterIDFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cluster id file %s: %w", path, err)
	}
	id := strings.TrimSpace(string(b))
	if err := validClusterID(id); err != nil {
		return "", fmt.Errorf("cluster id file %s: %w", path, err)
	}
	return id, nil
}

// writeClusterID records id in dir, replacing the file atomically.
func writeClusterID(dir, id string) error {
	path := filepath.Join(dir, clusterIDFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("cluster id file %s: %w", path, err)
	}
	_, werr := f.WriteString(id + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cluster id file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cluster id file %s: %w", path, err)
	}
	return nil
}

// clusterIDRecord keeps the data dir's cluster-id file in step with the ID the
// FSM holds.
type clusterIDRecord struct {
	mu  sync.Mutex
	dir string
	id  string // what the file says
}

// ClusterID is the ID of the cluster this node belongs to: the committed one, or
// before that the one its data dir records ("" for a node that has neither).
func (n *Node) ClusterID() string {
	if id := n.fsm.clusterID(); id != "" {
		return id
	}
	n.idRecord.mu.Lock()
	defer n.idRecord.mu.Unlock()
	return n.idRecord.id
}

// recordClusterID writes a committed ID the data dir does not hold yet; the FSM
// calls it after every apply and restore that leaves the state with an ID.
func (n *Node) recordClusterID(id string) {
	r := &n.idRecord
	r.mu.Lock()
	defer r.mu.Unlock()
	if id == "" || id == r.id || r.dir == "" {
		return
	}
	if r.id != "" {
		n.logger.Warn("the committed cluster id differs from the data dir's; the committed one wins", "data_dir", r.dir, "committed", id, "data_dir_id", r.id)
	}
	if err := writeClusterID(r.dir, id); err != nil {
		n.logger.Error("record the cluster id in the data dir", "err", err)
		return
	}
	r.id = id
	n.logger.Info("cluster id recorded in the data dir", "cluster_id", id, "data_dir", r.dir)
}

// CommitClusterID makes the leader commit an ID when the replicated state has
// none yet, once every member can apply set_cluster_id (versions.go): the one its
// data dir holds (the first leader of a freshly bootstrapped cluster), or a
// random one when the dir holds none either (a cluster bootstrapped before
// clusters had IDs, after its last voter was upgraded). Every node then records
// the committed ID in its data dir. It does nothing on a state that has an ID
// and on followers. Call it only after Barrier, so the state read is complete.
func (n *Node) CommitClusterID(timeout time.Duration) error {
	if !n.IsLeader() || n.fsm.clusterID() != "" {
		return nil
	}
	if gated, _ := n.Gated(TypeClusterID.String()); gated {
		// Retried on every leader pass: the gate opens with the last voter's report.
		return nil
	}
	n.idRecord.mu.Lock()
	id := n.idRecord.id
	n.idRecord.mu.Unlock()
	if id == "" {
		fresh, err := newClusterID()
		if err != nil {
			return err
		}
		id = fresh
		n.logger.Info("this cluster was bootstrapped before clusters had IDs: giving it one", "cluster_id", id)
	}
	if err := n.Apply(SetClusterID{ID: id}, timeout); err != nil {
		return err
	}
	n.logger.Info("committed the cluster id", "cluster_id", n.fsm.clusterID())
	return nil
}

// foreignClusterError is the one error a node with another cluster's data dir
// gets: the dir and both IDs.
func foreignClusterError(dir, mine, where, theirs string) error {
	return fmt.Errorf("data dir %s belongs to cluster %s, but %s is cluster %s: %w; give this node an empty data dir (move the old one away) to join this cluster",
		dir, mine, where, theirs, ErrForeignCluster)
}

// checkClusterAt asks every address whether a raftvip cluster answers there and
// refuses when one does with another ID than the data dir's. Addresses that do
// not answer, and clusters without an ID, do not count. Probes run in parallel,
// so a start next to dead peers waits one probeTimeout at most.
func (n *Node) checkClusterAt(addrs []string) error {
	mine := n.ClusterID()
	if mine == "" || len(addrs) == 0 {
		return nil
	}
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := n.roundTrip(a, forwardRequest{Op: "probe"}, probeTimeout)
			if err != nil || resp.Error != "" || resp.ClusterID == "" || resp.ClusterID == mine {
				return
			}
			errs[i] = foreignClusterError(n.idRecord.dir, mine, fmt.Sprintf("the raftvip cluster at %s (node %q)", a, resp.Node), resp.ClusterID)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("raft: refusing to start: %w", err)
		}
	}
	return nil
}

// probeAnswer adds this node's cluster ID to its answer to a probe.
func (n *Node) probeAnswer(resp forwardResponse) forwardResponse {
	resp.ClusterID = n.ClusterID()
	return resp
}

// refuseForeignJoin is the leader's answer to a join from a node whose data dir
// belongs to another cluster; ok is false when the join may go on.
func (n *Node) refuseForeignJoin(req forwardRequest) (resp forwardResponse, refused bool) {
	mine := n.ClusterID()
	if req.ClusterID == "" || mine == "" || req.ClusterID == mine {
		return forwardResponse{}, false
	}
	n.logger.Warn("refused join: the node's data dir belongs to another cluster", "id", req.ID, "its_cluster_id", req.ClusterID, "cluster_id", mine)
	return forwardResponse{
		Error:     fmt.Sprintf("%s: node %q holds cluster %s, this cluster is %s", ErrForeignCluster, req.ID, req.ClusterID, mine),
		ClusterID: mine,
	}, true
}

// joinError names this node's data dir when the cluster refused it for holding
// another cluster's data.
func (n *Node) joinError(target string, resp forwardResponse, err error) error {
	if err == nil || resp.ClusterID == "" {
		return err
	}
	mine := n.ClusterID()
	if mine == "" || mine == resp.ClusterID {
		return err
	}
	return fmt.Errorf("join via %s: %w", target, foreignClusterError(n.idRecord.dir, mine, "the cluster there", resp.ClusterID))
}
