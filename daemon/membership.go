package daemon

import (
	"context"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// Backoff bounds for a worker asking to join.
const (
	joinMinBackoff = 250 * time.Millisecond
	joinMaxBackoff = 5 * time.Second
)

// joinLoop makes a --join node a nonvoter of the cluster and keeps it one: it
// asks until a leader adds it, trying each --join address in turn, and asks again
// whenever it has not heard from a leader for rejoinAfter (the leader removes
// workers that stay silent).
func (d *Daemon) joinLoop(ctx context.Context) {
	backoff := joinMinBackoff
	joined := false
	next := 0
	for {
		last := d.node.LastContact()
		needJoin := !joined || fenced(last, d.cfg.WorkerRemovalTimeout/2, time.Now())
		if needJoin {
			via := d.cfg.Join[next%len(d.cfg.Join)]
			next++
			err := d.node.Join(via, 2*time.Second)
			if err != nil {
				d.log.Warn("join failed, retrying", "join", via, "retry_in", backoff, "err", err)
				backoff = min(backoff*2, joinMaxBackoff)
			} else {
				if !joined {
					d.log.Info("joined the cluster as a nonvoter", "via", via, "control_plane", d.cfg.ControlPlane)
				} else {
					d.log.Info("re-joined the cluster after a long silence", "via", via)
				}
				joined, backoff = true, joinMinBackoff
				go d.reportOnce(ctx)
			}
		}
		wait := backoff
		if !needJoin || joined {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
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
