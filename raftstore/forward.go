package raftstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// Followers cannot write to Raft, but they must tell the leader about themselves
// (health reports, draining) and workers must ask to join. They do it over the Raft
// port itself: a connection that starts with connForward carries one request and one
// response, authenticated by the same mutual TLS as Raft traffic.

// ErrNoLeader means no leader is known, so a request cannot be forwarded yet.
var ErrNoLeader = errors.New("no known raft leader")

// forwardRequest is one request a follower sends the leader.
type forwardRequest struct {
	Op      string    `json:"op"`                // "apply", "join", "read-index", "probe", "members" or "remove"
	Command []byte    `json:"command,omitempty"` // Encode output, for apply
	ID      string    `json:"id,omitempty"`      // for join and remove
	Address string    `json:"address,omitempty"` // for join
	Join    *joinInfo `json:"join,omitempty"`    // for join (join.go)
	// ClusterID is the joiner's cluster ID (its data dir's), "" for a fresh node.
	ClusterID string `json:"cluster_id,omitempty"`
	// Commands is the sender's Supported features, on every apply: the leader
	// learns them before it may commit NodeInfo.Commands (versions.go). Leaders
	// of the release before ignore the field.
	Commands []string `json:"commands,omitempty"`
}

// forwardResponse is the leader's answer; Leader is set when the receiver was not
// the leader, so the caller can retry there.
type forwardResponse struct {
	Error  string `json:"error,omitempty"`
	Leader string `json:"leader,omitempty"`
	Index  uint64 `json:"index,omitempty"` // read-index: the leader's commit index
	// Members answers a probe: how many servers this node's configuration has
	// (0 on a node still waiting to be added).
	Members int `json:"members,omitempty"`
	// Node answers a probe: the answering node's name, so an operator sees who.
	Node string `json:"node,omitempty"`
	// List answers "members" (see admin.go).
	List *MemberList `json:"list,omitempty"`
	// ClusterID answers a probe, and a join refused for another cluster's data
	// dir: the answering cluster's ID (clusterid.go).
	ClusterID string `json:"cluster_id,omitempty"`
}

// Forward commits c through the leader from any node: on the leader it is Apply, on
// a follower it is sent to the leader. Only commands a node may say about itself are
// accepted from peers (see authorize).
func (n *Node) Forward(c Command, timeout time.Duration) error {
	if n.IsLeader() {
		return n.Apply(c, timeout)
	}
	data, err := Encode(c)
	if err != nil {
		return err
	}
	_, addr := n.Leader()
	if addr == "" {
		return ErrNoLeader
	}
	return n.request(addr, forwardRequest{Op: "apply", Command: data, Commands: Supported()}, timeout)
}

// Join asks the cluster reachable at target (a voter or the control-plane VIP) to add
// this node as a nonvoter; a follower that receives the request points at its leader.
func (n *Node) Join(target string, timeout time.Duration) error {
	req := n.joinRequest()
	req.ClusterID = n.ClusterID()
	resp, err := n.requestResp(target, req, timeout)
	if err := n.joinError(target, resp, asJoinRefused(resp, err)); err != nil {
		return err
	}
	n.mem.joined.Store(true)
	return nil
}

// ReadIndex returns an index the local FSM must have applied before it can be sure
// it holds everything committed until now: the leader's commit index, confirmed
// with a quorum. A follower that was cut off and hears heartbeats again uses it:
// heartbeats carry no log, so until replication catches up its state may be old.
// A leader answers only once an entry of its own term has committed (Barrier):
// before that its commit index may lag what its predecessor committed.
func (n *Node) ReadIndex(timeout time.Duration) (uint64, error) {
	if n.IsLeader() {
		return n.readIndex(timeout)
	}
	_, addr := n.Leader()
	if addr == "" {
		return 0, ErrNoLeader
	}
	resp, err := n.requestResp(addr, forwardRequest{Op: "read-index"}, timeout)
	return resp.Index, err
}

// readIndex is the leader's side of ReadIndex: the term's barrier first, then a
// quorum check, then the commit index.
func (n *Node) readIndex(timeout time.Duration) (uint64, error) {
	if err := n.Barrier(timeout); err != nil {
		return 0, err
	}
	if err := n.VerifyLeader(); err != nil {
		return 0, err
	}
	return n.raft.CommitIndex(), nil
}

// request sends req to addr, following one redirect to the leader.
func (n *Node) request(addr string, req forwardRequest, timeout time.Duration) error {
	_, err := n.requestResp(addr, req, timeout)
	return err
}

func (n *Node) requestResp(addr string, req forwardRequest, timeout time.Duration) (forwardResponse, error) {
	deadline := time.Now().Add(timeout)
	for hop := 0; hop < 2; hop++ {
		resp, err := n.roundTrip(addr, req, time.Until(deadline))
		if err != nil {
			return resp, err
		}
		if resp.Error == "" {
			return resp, nil
		}
		if resp.Leader != "" && resp.Leader != addr {
			addr = resp.Leader
			continue
		}
		return resp, fmt.Errorf("%s: %s", addr, resp.Error)
	}
	return forwardResponse{}, fmt.Errorf("%s: %w", addr, ErrNoLeader)
}

func (n *Node) roundTrip(addr string, req forwardRequest, timeout time.Duration) (forwardResponse, error) {
	var resp forwardResponse
	if timeout <= 0 {
		return resp, fmt.Errorf("forward %s to %s: deadline passed", req.Op, addr)
	}
	c, err := n.mux.dialKind(raft.ServerAddress(addr), timeout, connForward)
	if err != nil {
		return resp, fmt.Errorf("forward %s to %s: %w", req.Op, addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	body, err := json.Marshal(req)
	if err != nil {
		return resp, err
	}
	if err := writeFrame(c, body); err != nil {
		return resp, fmt.Errorf("forward %s to %s: %w", req.Op, addr, err)
	}
	b, err := readFrame(c)
	if err != nil {
		return resp, fmt.Errorf("forward %s to %s: %w", req.Op, addr, err)
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return resp, fmt.Errorf("forward %s to %s: bad response: %w", req.Op, addr, err)
	}
	return resp, nil
}

// forwardApplyTimeout bounds how long the leader works on one forwarded request.
const forwardApplyTimeout = 5 * time.Second

// serveForward answers one forwarded request on an accepted connection.
func (n *Node) serveForward(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(forwardApplyTimeout + time.Second))
	peer := peerName(c)
	id := identityOf(c)
	key := peer
	if key == "" {
		key = sourceHost(c.RemoteAddr())
	}
	var resp forwardResponse
	b, err := readFrameMax(c, maxForwardRequest)
	switch {
	case err != nil && errors.Is(err, io.EOF):
		return
	case err != nil:
		n.logger.Warn("refused forwarded request", "peer", peer, "remote", c.RemoteAddr().String(), "error", err)
		resp = forwardResponse{Error: err.Error()}
		discardOversized(c, err)
	case !n.fwdLimit.allow(key, time.Now()):
		n.logger.Warn("refused forwarded request: rate limit", "peer", peer, "remote", c.RemoteAddr().String(), "rate", forwardRate, "burst", forwardBurst)
		resp = forwardResponse{Error: fmt.Sprintf("rate limit: more than %d forwarded requests per second", forwardRate)}
	default:
		resp = n.handleForward(id, b)
	}
	out, err := json.Marshal(resp)
	if err != nil {
		return
	}
	_ = writeFrame(c, out)
}

// discardOversized reads and drops the body of a frame refused for its size, at most
// maxFrame bytes within a second, so the refusal reaches the sender instead of a
// connection reset. Anything larger is cut off: the sender gets the reset it asked for.
func discardOversized(c net.Conn, err error) {
	var big *frameTooLargeError
	if !errors.As(err, &big) {
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.CopyN(io.Discard, c, int64(min(big.size, maxFrame)))
}

func (n *Node) handleForward(id Identity, b []byte) forwardResponse {
	peer := id.Name
	var req forwardRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return forwardResponse{Error: "malformed request"}
	}
	if !n.started.Load() {
		return forwardResponse{Error: "raft is still starting"}
	}
	if req.Op == "probe" {
		// Any member answers, leader or not: the asker only wants to know whether a
		// cluster exists there.
		servers, _ := n.Servers()
		return n.probeAnswer(forwardResponse{Node: n.id, Members: len(servers)})
	}
	if !n.IsLeader() {
		_, addr := n.Leader()
		return forwardResponse{Error: ErrNotLeader.Error(), Leader: addr}
	}
	switch req.Op {
	case "members", "remove":
		return n.handleAdminForward(peer, req)
	case "apply":
		c, err := Decode(req.Command)
		if err != nil {
			return forwardResponse{Error: err.Error()}
		}
		if err := authorize(peer, c); err != nil {
			n.logger.Warn("refused forwarded command", "peer", peer, "command", c.Type().String(), "err", err)
			return forwardResponse{Error: err.Error()}
		}
		if r, ok := c.(ReportNode); ok {
			n.caps.note(r.Node.Name, req.Commands)
		}
		if err := n.Apply(c, forwardApplyTimeout); err != nil {
			return forwardResponse{Error: err.Error()}
		}
	case "read-index":
		idx, err := n.readIndex(forwardApplyTimeout)
		if err != nil {
			return forwardResponse{Error: err.Error()}
		}
		return forwardResponse{Index: idx}
	case "join":
		if resp, refused := n.refuseForeignJoin(req); refused {
			return resp
		}
		return n.handleJoin(id, req)
	default:
		return forwardResponse{Error: fmt.Sprintf("unknown op %q", req.Op)}
	}
	return forwardResponse{}
}

// ErrClusterExists refuses a bootstrap because a raftvip cluster answered at one of
// the probed addresses: bootstrapping would make a second cluster and a second VIP
// holder.
var ErrClusterExists = errors.New("a raftvip cluster already answers there")

// probeBeforeBootstrap asks every address whether a cluster lives there and refuses
// when one with members answers.
func (n *Node) probeBeforeBootstrap(addrs []string) error {
	for _, a := range addrs {
		resp, err := n.roundTrip(a, forwardRequest{Op: "probe"}, probeTimeout)
		if err != nil || resp.Error != "" || resp.Members == 0 {
			n.logger.Info("bootstrap probe: no cluster answers", "address", a, "err", err)
			continue
		}
		return fmt.Errorf("raft: refusing to bootstrap: %s (node %q, %d members): %w; wipe nothing, start this node with --join instead of --bootstrap",
			a, resp.Node, resp.Members, ErrClusterExists)
	}
	return nil
}

// probeTimeout bounds one bootstrap probe, so an address that swallows packets does
// not hold up the first node for long.
const probeTimeout = 2 * time.Second

// authorize allows a peer to forward only what it may say about itself: its own node
// report, and its confirmation that it released a VIP, alone or as a batch of such
// confirmations (a draining node confirms all its VIPs in one request; one each
// would run into the per-peer forwarding rate). peer is the name in its verified
// certificate, "" on an insecure transport (where anyone can do anything anyway).
func authorize(peer string, c Command) error {
	var about string
	switch r := c.(type) {
	case ReportNode:
		about = r.Node.Name
	case AckRelease:
		about = r.Node
	case Batch:
		if len(r.Commands) == 0 {
			return fmt.Errorf("an empty %s may not be forwarded", c.Type())
		}
		for _, sub := range r.Commands {
			if _, ok := sub.(AckRelease); !ok {
				return fmt.Errorf("a %s may be forwarded only of %s, not of %s", c.Type(), TypeAckRelease, sub.Type())
			}
			if err := authorize(peer, sub); err != nil {
				return err
			}
		}
		return nil
	default:
		return fmt.Errorf("%s may not be forwarded; only %s and %s", c.Type(), TypeReportNode, TypeAckRelease)
	}
	if peer != "" && about != peer {
		return fmt.Errorf("certificate is for %q, %s is about %q", peer, c.Type(), about)
	}
	return nil
}

// PeerContacts reports, on the leader, when each of servers (from Servers) last
// answered it (heartbeats are answered every few milliseconds). Servers never heard
// from since this node started dialling them are missing from the map. The leader's
// decision that a node is down is made from this.
func (n *Node) PeerContacts(servers []Server) map[string]time.Time {
	out := map[string]time.Time{}
	for _, s := range servers {
		if s.ID == n.id {
			continue
		}
		if t, ok := n.mux.lastHeard(s.Address); ok {
			out[s.ID] = t
		}
	}
	return out
}
