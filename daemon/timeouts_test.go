package daemon

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// TestCheckTimeoutsOrdering proves each unsafe timeout ordering is rejected
// with one error naming the flag, that the check interval counts, and that the
// defaults pass.
func TestCheckTimeoutsOrdering(t *testing.T) {
	ms := time.Millisecond
	base := func() *Parsed {
		p := &Parsed{}
		p.Raft = raftstore.DefaultTimeouts()
		p.FenceTimeout = 300 * ms
		p.NodeDownTimeout = 600 * ms
		p.WorkerRemovalTimeout = time.Minute
		p.APIServerHealthInterval = time.Second
		return p
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Parsed)
		flag   string
		msg    string
	}{
		{"defaults", func(*Parsed) {}, "", ""},
		{"lease equal to leader loss", func(p *Parsed) { p.Raft.LeaderLease = p.Raft.LeaderLoss }, "raft-leader-lease-timeout", "shorter than"},
		{"lease longer than leader loss", func(p *Parsed) { p.Raft.LeaderLease = p.Raft.LeaderLoss + ms }, "raft-leader-lease-timeout", "shorter than"},
		{"lease plus check interval over leader loss", func(p *Parsed) { p.Raft.LeaderLease = 45 * ms }, "raft-leader-lease-timeout", "check interval"},
		{"lease plus check interval just within leader loss", func(p *Parsed) { p.Raft.LeaderLease = 40 * ms }, "", ""},
		{"leader loss over heartbeat", func(p *Parsed) { p.Raft.LeaderLoss = p.Raft.Heartbeat + ms }, "raft-leader-loss-timeout", "at most --raft-heartbeat-timeout"},
		{"leader loss below its minimum", func(p *Parsed) { p.Raft.LeaderLoss = 5 * ms }, "raft-leader-loss-timeout", "at least"},
		{"leader loss at heartbeat, long lease", func(p *Parsed) { p.Raft.LeaderLoss, p.Raft.LeaderLease = p.Raft.Heartbeat, 75*ms }, "", ""},
		{"node-down one ns over fence", func(p *Parsed) { p.NodeDownTimeout = p.FenceTimeout + 1 }, "node-down-timeout", "fence check intervals"},
		{"node-down within one check of fence", func(p *Parsed) { p.NodeDownTimeout = p.FenceTimeout + announceCheckInterval(p) }, "node-down-timeout", "fence check intervals"},
		{"node-down with two checks of margin", func(p *Parsed) { p.NodeDownTimeout = p.FenceTimeout + 2*announceCheckInterval(p) }, "", ""},
		{"node-down below fence", func(p *Parsed) { p.NodeDownTimeout = p.FenceTimeout - ms }, "node-down-timeout", "fence check intervals"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			tc.mutate(p)
			err := p.checkTimeouts()
			if tc.flag == "" {
				if err != nil {
					t.Fatalf("rejected a safe ordering: %v", err)
				}
				return
			}
			var fe *FlagError
			if !errors.As(err, &fe) {
				t.Fatalf("want a FlagError for --%s, got %v", tc.flag, err)
			}
			if fe.Flag != tc.flag || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("want --%s error mentioning %q, got --%s: %v", tc.flag, tc.msg, fe.Flag, err)
			}
		})
	}
}
