// Package handoff decides the next step of each service-VIP owner change, so a
// planned move never has two nodes speaking for one VIP.
//
// assign says where every VIP should be; this package says what the leader may
// commit towards that now. A planned move (the old owner is alive: draining,
// excluded, without local endpoint, outbalanced) has two phases:
//
//  1. the leader commits a release: the old owner stays recorded but must stop
//     announcing, take the address off and confirm (raftstore.AckRelease);
//  2. once the release is confirmed, or once it is older than Wait (the old
//     owner's kernel lease has run out even if it never saw the release), the
//     leader commits the new owner.
//
// A move away from a node that is down, a VIP's first owner and a withdrawal
// (no new owner) commit in one step: a down node's fence already silenced it,
// and in the other two cases nobody new speaks. A pending release whose VIP
// assign now wants to keep where it is is taken back by committing the same
// owner again, which clears the release and lets it announce again.
//
// Everything here is pure: the caller passes the clock and the contact view.
package handoff

import (
	"net/netip"
	"slices"
	"time"

	"github.com/raftvip/raftvip/daemon/assign"
)

// Owner is the replicated owner record of one VIP, with the release marks.
type Owner struct {
	Node      string
	Epoch     uint64
	Service   string
	Releasing bool // a release was committed and the owner must stop announcing
	Released  bool // the owner confirmed it no longer holds the address
}

// Why a Commit may happen now. Each is logged with the owner change.
const (
	// ViaDirect: the VIP gets its first owner or is withdrawn; nobody new speaks
	// while the old owner might.
	ViaDirect = "direct"
	// ViaOwnerDown: the old owner is down, its fence silenced it already.
	ViaOwnerDown = "owner down"
	// ViaAcked: the old owner confirmed the release.
	ViaAcked = "release confirmed"
	// ViaFenceExpired: no confirmation, but the release is older than the old
	// owner's kernel lease.
	ViaFenceExpired = "release older than the fence"
	// ViaKept: assign keeps the VIP on the releasing owner; committing it again
	// takes the release back.
	ViaKept = "release taken back"
)

// ReasonReleaseTakenBack is the Decision reason of a ViaKept commit.
const ReasonReleaseTakenBack = "release taken back: the owner is eligible again"

// Commit is one owner change the leader may commit now, and why now.
type Commit struct {
	assign.Decision
	Via string
}

// Plan is what the leader commits next: releases to ask for and owner changes.
// Both may be in one batch; they never name the same VIP.
type Plan struct {
	Release []assign.Decision // planned moves whose old owner is asked to let go now
	Commit  []Commit
}

// Input is what one decision reads.
type Input struct {
	Owners map[netip.Addr]Owner
	// Moves are assign's decisions for this state.
	Moves []assign.Decision
	// Down reports whether a node is down: not heard from within the node-down
	// timeout, or not in the cluster at all.
	Down func(node string) bool
	// Since is when each pending release was first seen (Tracker.Observe); a
	// release missing here counts as seen now.
	Since map[netip.Addr]time.Time
	Now   time.Time
	// Wait is how old an unconfirmed release must be before the new owner may be
	// committed: the old owner's kernel lease plus the time it may take to learn
	// of the release.
	Wait time.Duration
}

// Next decides the next step for every VIP that needs one, sorted by VIP.
func Next(in Input) Plan {
	var p Plan
	moving := make(map[netip.Addr]bool, len(in.Moves))
	for _, d := range in.Moves {
		moving[d.VIP] = true
		o, owned := in.Owners[d.VIP]
		switch {
		case !owned || d.From == "" || d.To == "":
			p.Commit = append(p.Commit, Commit{d, ViaDirect})
		case o.Node != d.From:
			// assign read another owner than the one recorded: wait for a fresh pass.
		case in.Down != nil && in.Down(o.Node):
			p.Commit = append(p.Commit, Commit{d, ViaOwnerDown})
		case !o.Releasing:
			p.Release = append(p.Release, d)
		case o.Released:
			p.Commit = append(p.Commit, Commit{d, ViaAcked})
		case released(in, d.VIP):
			p.Commit = append(p.Commit, Commit{d, ViaFenceExpired})
		}
	}
	for v, o := range in.Owners {
		if !o.Releasing || moving[v] {
			continue
		}
		d := assign.Decision{VIP: v, Service: o.Service, From: o.Node, To: o.Node, Reason: ReasonReleaseTakenBack}
		p.Commit = append(p.Commit, Commit{d, ViaKept})
	}
	slices.SortFunc(p.Release, func(a, b assign.Decision) int { return a.VIP.Compare(b.VIP) })
	slices.SortFunc(p.Commit, func(a, b Commit) int { return a.VIP.Compare(b.VIP) })
	return p
}

// released reports whether the pending release of v is older than Wait.
func released(in Input, v netip.Addr) bool {
	since, ok := in.Since[v]
	if !ok {
		since = in.Now
	}
	return in.Now.Sub(since) >= in.Wait
}

// Tracker remembers when this leader first saw each pending release. A release
// committed by an earlier leader is timed from when this one first saw it,
// which is later than its commit: the wait only grows.
type Tracker struct {
	seen map[release]time.Time
}

// release names one release: a new owner record (epoch) is a new release.
type release struct {
	vip   netip.Addr
	node  string
	epoch uint64
}

// Observe records the releases pending in owners that were not seen before,
// forgets the ones no longer pending, and returns when each pending one was
// first seen, for Input.Since.
func (t *Tracker) Observe(owners map[netip.Addr]Owner, now time.Time) map[netip.Addr]time.Time {
	pending := map[release]bool{}
	out := map[netip.Addr]time.Time{}
	if t.seen == nil {
		t.seen = map[release]time.Time{}
	}
	for v, o := range owners {
		if !o.Releasing {
			continue
		}
		r := release{v, o.Node, o.Epoch}
		pending[r] = true
		at, ok := t.seen[r]
		if !ok {
			at = now
			t.seen[r] = at
		}
		out[v] = at
	}
	for r := range t.seen {
		if !pending[r] {
			delete(t.seen, r)
		}
	}
	return out
}
