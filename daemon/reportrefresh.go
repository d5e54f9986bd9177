package daemon

import (
	"context"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// A leader writes only the report fields every voter can decode
// (raftstore/versions.go): while one voter still runs the previous release, a
// report is committed without its feature list and interfaces. Nobody else
// sends that report again once the last voter is upgraded, and a node whose
// interfaces are missing from the state is never eligible for a pool with an
// interface. So each node watches its own committed report and sends it again,
// with a backoff, while it lacks what this node sends; and it reports after
// every leader change, because a new leader learns features only from reports.

// Why a node sends its report again; each is logged once per change.
const (
	refreshLeaderChanged = "the leader changed: it learns this node's features from a report"
	refreshIncomplete    = "the committed report lacks fields this node sends: a voter could not decode them then"
)

// reportRefreshMin and reportRefreshMax bound the backoff between reports sent
// again for an incomplete committed report: fast once the gate opens at the end
// of an upgrade, one entry a minute per node while a voter stays old.
const (
	reportRefreshMin   = time.Second
	reportRefreshMax   = time.Minute
	reportRefreshCheck = 500 * time.Millisecond
)

// reportRefresh is the pure decision: why this node should send its report
// again now, or "" for no reason. committed is this node's report in the
// applied state (found: there is one; until then the first report is the start
// loops' job). sendsLinks says whether this node's reports carry interfaces.
func reportRefresh(committed raftstore.NodeInfo, found, sendsLinks bool, leader, lastLeader string) string {
	switch {
	case !found || leader == "":
		return ""
	case leader != lastLeader:
		return refreshLeaderChanged
	case committed.Commands == nil || (sendsLinks && committed.Interfaces == nil):
		return refreshIncomplete
	}
	return ""
}

// refreshBackoff spaces the reports sent again for one incomplete committed
// report: the wait doubles from reportRefreshMin up to reportRefreshMax and
// starts over once the report is complete.
type refreshBackoff struct {
	next time.Time
	wait time.Duration
}

// due reports whether a report sent for incomplete may go now, and records it.
func (b *refreshBackoff) due(incomplete bool, now time.Time) bool {
	if !incomplete {
		*b = refreshBackoff{}
		return false
	}
	if now.Before(b.next) {
		return false
	}
	b.wait = min(max(b.wait*2, reportRefreshMin), reportRefreshMax)
	b.next = now.Add(b.wait)
	return true
}

// reportRefreshLoop applies reportRefresh. A voter that checks its API server
// waits for the first check, so a report sent here never claims an unknown
// health as down.
func (d *Daemon) reportRefreshLoop(ctx context.Context) {
	var lastLeader, lastWhy string
	var backoff refreshBackoff
	tick := time.NewTicker(reportRefreshCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if d.cfg.IsVoter && d.cfg.APIServerHealthURL != "" {
			d.mu.Lock()
			unknown := d.apiHealth == nil
			d.mu.Unlock()
			if unknown {
				continue
			}
		}
		leader, _ := d.node.Leader()
		committed, found := d.node.NodeReport(d.cfg.NodeName)
		why := reportRefresh(committed, found, d.bgp == nil && len(d.holders) > 0, leader, lastLeader)
		if why == refreshIncomplete && !backoff.due(true, time.Now()) {
			continue
		}
		if why == "" {
			backoff.due(false, time.Now())
			lastWhy = ""
			continue
		}
		if why != lastWhy {
			d.log.Info("sending this node's report again", "why", why, "leader", leader)
			lastWhy = why
		}
		if d.report() && why == refreshLeaderChanged {
			lastLeader = leader
		}
	}
}
