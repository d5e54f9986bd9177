package raftstore

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckRemoval(t *testing.T) {
	v := func(id string) Server { return Server{ID: id, Address: id + ":7950", Suffrage: SuffrageVoter} }
	nv := func(id string) Server { return Server{ID: id, Address: id + ":7950", Suffrage: SuffrageNonvoter} }
	three := []Server{v("a"), v("b"), v("c")}
	cases := []struct {
		name    string
		servers []Server
		alive   []string
		remove  string
		wantErr error
		wantMsg string
	}{
		{name: "dead voter of three", servers: three, alive: []string{"a", "b"}, remove: "c"},
		{name: "live voter of three, all alive", servers: three, alive: []string{"a", "b", "c"}, remove: "b"},
		{name: "live voter while another is down", servers: three, alive: []string{"a", "b"}, remove: "b",
			wantErr: ErrUnsafeRemoval, wantMsg: "1 of the 2 voters left would be live (down: c)"},
		{name: "dead voter of three with two down", servers: three, alive: []string{"a"}, remove: "c",
			wantErr: ErrUnsafeRemoval, wantMsg: "below their quorum of 2"},
		{name: "last voter", servers: []Server{v("a")}, alive: []string{"a"}, remove: "a",
			wantErr: ErrUnsafeRemoval, wantMsg: "last voter"},
		{name: "last voter with a nonvoter left", servers: []Server{v("a"), nv("w")}, alive: []string{"a", "w"}, remove: "a",
			wantErr: ErrUnsafeRemoval, wantMsg: "last voter"},
		{name: "one of two voters, the other alive", servers: []Server{v("a"), v("b")}, alive: []string{"a", "b"}, remove: "b"},
		{name: "nonvoter, even when voters are down", servers: []Server{v("a"), v("b"), v("c"), nv("w")}, alive: []string{"a"}, remove: "w"},
		{name: "dead voter of five with one more down", servers: []Server{v("a"), v("b"), v("c"), v("d"), v("e")},
			alive: []string{"a", "b", "c"}, remove: "e"},
		{name: "unknown name", servers: three, alive: []string{"a", "b", "c"}, remove: "zz",
			wantErr: ErrNotMember, wantMsg: `"zz": not a member (members: a, b, c)`},
		{name: "empty name", servers: three, alive: []string{"a"}, remove: "", wantErr: ErrNotMember},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			alive := map[string]bool{}
			for _, a := range tc.alive {
				alive[a] = true
			}
			err := CheckRemoval(tc.servers, alive, tc.remove)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("CheckRemoval: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("CheckRemoval: %v, want %v containing %q", err, tc.wantErr, tc.wantMsg)
			}
		})
	}
}

// TestMembersListAndRemove runs on three TLS nodes: a follower lists the
// members as the leader sees them, refuses unsafe removals with their own
// errors, and removes a stopped voter through the leader; the two left keep a
// leader and can still commit.
func TestMembersListAndRemove(t *testing.T) {
	ca := newTestCA(t, "admin-ca")
	c := newCluster(t, 3, ca, DefaultTimeouts())
	leader := c.leader()
	c.apply(allocation(1))
	var follower *Node
	for _, n := range c.running() {
		if n != leader {
			follower = n
		}
	}
	var list MemberList
	waitFor(t, "a member list with every follower heard from", func() bool {
		var err error
		list, err = follower.ListMembers(2 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range list.Members {
			if m.LastContactMs < 0 {
				return false
			}
		}
		return true
	})
	if !list.FromLeader || list.AnsweredBy != leader.id || len(list.Members) != 3 {
		t.Fatalf("list from a follower: %+v", list)
	}
	for _, m := range list.Members {
		if m.Suffrage != SuffrageVoter || m.Leader != (m.ID == leader.id) || m.Address == "" {
			t.Fatalf("member %+v (leader %s)", m, leader.id)
		}
	}

	if err := follower.RemoveMember("nobody", 2*time.Second); err == nil || !strings.Contains(err.Error(), "not a member") {
		t.Fatalf("remove an unknown name: %v", err)
	}

	// Stop a follower other than the one asking; wait until the leader counts it down.
	var victim string
	for _, n := range c.running() {
		if n != leader && n != follower {
			victim = n.id
		}
	}
	c.kill(victim)
	time.Sleep(leader.memberDownAfter())
	// Removing the live follower would leave {leader, victim}: one live of two.
	if err := leader.RemoveMember(follower.id, 2*time.Second); err == nil || !strings.Contains(err.Error(), "lose its quorum") {
		t.Fatalf("remove a live voter while another is down: %v", err)
	}
	if err := follower.RemoveMember(victim, 5*time.Second); err != nil {
		t.Fatalf("remove the stopped voter through a follower: %v", err)
	}
	waitFor(t, "two voters on every node", func() bool {
		for _, n := range c.running() {
			servers, err := n.Servers()
			if err != nil || len(servers) != 2 {
				return false
			}
		}
		return true
	})
	c.leader()
	c.apply(allocation(2))
	// Two voters, both live: removing one more would leave the last voter, which
	// the check allows; removing the last one is refused.
	leader = c.leader()
	if err := leader.RemoveMember(leader.id, 2*time.Second); err != nil {
		t.Fatalf("remove the leader itself from two live voters: %v", err)
	}
	var last *Node
	waitFor(t, "the remaining voter to lead alone", func() bool {
		for _, n := range c.running() {
			servers, _ := n.Servers()
			if n.IsLeader() && len(servers) == 1 && servers[0].ID == n.id {
				last = n
				return true
			}
		}
		return false
	})
	if err := last.RemoveMember(last.id, 2*time.Second); err == nil || !strings.Contains(err.Error(), "last voter") {
		t.Fatalf("remove the last voter: %v", err)
	}
}

// TestRemoveWithoutLeaderSaysWhy: a lone survivor of three knows no leader and
// cannot change the configuration; the error says so and where to go.
func TestRemoveWithoutLeaderSaysWhy(t *testing.T) {
	c := newCluster(t, 3, nil, DefaultTimeouts())
	c.leader()
	c.kill("n2")
	c.kill("n3")
	n1 := c.node("n1")
	waitFor(t, "n1 to lose the leader", func() bool { id, _ := n1.Leader(); return id == "" })
	err := n1.RemoveMember("n3", time.Second)
	if !errors.Is(err, ErrNoLeader) || !strings.Contains(err.Error(), "raftvip recover") {
		t.Fatalf("remove without a leader: %v", err)
	}
	list, err := n1.ListMembers(time.Second)
	if err != nil || list.FromLeader || len(list.Members) != 3 || list.Members[0].LastContactMs != -1 {
		t.Fatalf("list without a leader: %+v, %v", list, err)
	}
}
