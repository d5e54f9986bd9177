package daemon

import (
	"errors"
	"fmt"
	"testing"

	"github.com/raftvip/raftvip/daemon/membership"
	"github.com/raftvip/raftvip/raftstore"
)

func TestJoinGiveUp(t *testing.T) {
	refused := func(code string) error {
		return fmt.Errorf("join: %w", &raftstore.JoinRefusedError{Code: code, Reason: "because"})
	}
	foreign := fmt.Errorf("join via x: %w", raftstore.ErrForeignCluster)
	for _, tc := range []struct {
		name   string
		err    error
		joined bool
		stop   bool
	}{
		{"leader's name, never joined", refused(membership.CodeLeaderName), false, true},
		{"certificate for another name", refused(membership.CodeNameMismatch), false, true},
		{"worker certificate asks for a vote", refused(membership.CodeNotControlPlane), false, true},
		{"data dir of another cluster", foreign, false, true},
		{"nonvoter limit: a slot may free", refused(membership.CodeNonvoterLimit), false, false},
		{"voter re-address: the old member may be removed", refused(membership.CodeVoterReaddress), false, false},
		{"no leader yet", raftstore.ErrNoLeader, false, false},
		{"a transport error", errors.New("dial tcp: connection refused"), false, false},
		{"a member refused later keeps asking", refused(membership.CodeLeaderName), true, false},
		{"a member and a foreign answer keeps asking", foreign, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := joinGiveUp(tc.err, tc.joined)
			if (got != nil) != tc.stop {
				t.Fatalf("joinGiveUp(%v, joined %v) = %v, want stop %v", tc.err, tc.joined, got, tc.stop)
			}
		})
	}
}
