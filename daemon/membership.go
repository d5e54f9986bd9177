package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/raftvip/raftvip/daemon/membership"
	"github.com/raftvip/raftvip/raftstore"
)

// Backoff bounds for a worker asking to join, and how often a control-plane
// joiner reports its progress until the leader promotes it.
const (
	joinMinBackoff     = 250 * time.Millisecond
	joinMaxBackoff     = 5 * time.Second
	joinReportInterval = 500 * time.Millisecond
)

// joinLoop makes a --join node a nonvoter of the cluster and keeps it one: it
// asks until a leader adds it, trying each --join address in turn, and asks again
// whenever it has not heard from a leader for rejoinAfter (the leader removes
// workers that stay silent). A --control-plane node keeps asking every
// joinReportInterval until it is a voter: each join carries its applied index,
// from which the leader decides that it has caught up (raftstore/promote.go).
func (d *Daemon) joinLoop(ctx context.Context) {
	backoff := joinMinBackoff
	joined, awaited := false, false
	next := 0
	for {
		awaiting := d.node.AwaitingPromotion()
		if awaited && !awaiting {
			d.log.Info("promoted to voter by the leader")
		}
		awaited = awaiting
		wait := time.Second
		if !joined || awaiting || fenced(d.node.LastContact(), d.cfg.WorkerRemovalTimeout/2, time.Now()) {
			via := d.cfg.Join[next%len(d.cfg.Join)]
			next++
			if err := d.node.Join(via, 2*time.Second); err != nil {
				if stop := joinGiveUp(err, joined); stop != nil {
					d.fail(stop)
					return
				}
				d.log.Warn("join failed, retrying", "join", via, "retry_in", backoff, "err", err)
				wait, backoff = backoff, min(backoff*2, joinMaxBackoff)
			} else {
				switch {
				case !joined:
					d.log.Info("joined the cluster as a nonvoter", "via", via, "control_plane", d.cfg.ControlPlane)
					go d.reportOnce(ctx)
				case !awaiting:
					d.log.Info("re-joined the cluster after a long silence", "via", via)
					go d.reportOnce(ctx)
				}
				joined, backoff = true, joinMinBackoff
				if awaiting {
					wait = joinReportInterval
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// joinGiveUp is the error the agent stops with when a join cannot succeed
// without the operator changing this node: a refusal only its flags or
// certificate can end (membership.PermanentRefusal), or a data dir of another
// cluster. Only a node that never joined gives up; a member refused later (its
// silence got it pruned) keeps asking. nil means retry.
func joinGiveUp(err error, joined bool) error {
	if joined {
		return nil
	}
	if errors.Is(err, raftstore.ErrForeignCluster) {
		return err
	}
	var refused *raftstore.JoinRefusedError
	if errors.As(err, &refused) && membership.PermanentRefusal(refused.Code) {
		return fmt.Errorf("the cluster refused this node's join for good (%s): %s; fix this node's --node-name, --join or certificate and start it again", refused.Code, refused.Reason)
	}
	return nil
}

// pruneWorkers (leader only) removes nonvoters silent for longer than the removal
// timeout, so the configuration does not fill up with dead workers. A removed
// worker that comes back joins again by itself.
func (d *Daemon) pruneWorkers(servers []raftstore.Server, contacts map[string]time.Time, leaderSince time.Time) {
	for _, s := range servers {
		if s.Suffrage != raftstore.SuffrageNonvoter {
			continue
		}
		last, ok := contacts[s.ID]
		if !ok || last.Before(leaderSince) {
			last = leaderSince
		}
		if time.Since(last) <= d.cfg.WorkerRemovalTimeout {
			continue
		}
		if err := d.node.RemoveServer(s.ID); err != nil {
			d.log.Error("remove silent worker", "node", s.ID, "err", err)
			continue
		}
		if err := d.node.Apply(raftstore.RemoveNode{Name: s.ID}, reportTimeout); err != nil {
			d.log.Warn("forget silent worker's report", "node", s.ID, "err", err)
		}
		d.log.Warn("removed a worker silent for longer than the removal timeout", "node", s.ID,
			"silent_for", time.Since(last).Round(time.Millisecond), "removal_timeout", d.cfg.WorkerRemovalTimeout)
	}
}

// removeDeletedNodes (leader only) removes the Raft member of a Kubernetes Node
// that was deleted, one per pass, when that keeps quorum safe (raftstore's
// RemoveDeletedNode). A member that has to stay is logged once per reason; hold
// is the last reason logged, returned updated.
func (d *Daemon) removeDeletedNodes(hold string) string {
	if d.services == nil {
		return hold
	}
	r, err := d.node.RemoveDeletedNode(d.services.DeletedNodes(), time.Now())
	switch {
	case err != nil:
		d.log.Error("remove the member of a deleted Node", "node", r.ID, "err", err)
	case r.ID != "":
		d.log.Warn("removed a member whose Kubernetes Node was deleted", "node", r.ID, "reason", r.Reason)
		d.m.nodeGoneRemovals.Inc()
		return ""
	case r.Reason != "" && r.Reason != hold:
		d.log.Warn("a member whose Kubernetes Node was deleted stays", "reason", r.Reason)
		return r.Reason
	}
	return hold
}
