package daemon

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// The owner's half of a planned move (daemon/handoff has the leader's): when
// the applied state marks one of this node's VIPs as releasing, the announce
// loop stops holding it (desiredVIPs, entitledNow) and, once the address is off
// the interface, confirms that through the leader with AckRelease about
// itself. Only then, or once the release is older than this node's kernel
// lease, does the leader commit the new owner.

// releaseAcks lists, sorted by VIP, the confirmations this node owes: releases
// of its VIPs that are not confirmed yet and whose address it no longer holds.
func releaseAcks(self string, st raftstore.State, held []netip.Addr) []raftstore.AckRelease {
	var out []raftstore.AckRelease
	for vip, o := range st.Owners {
		if o.Node != self || !o.Releasing || o.Released {
			continue
		}
		if a, err := netip.ParseAddr(vip); err != nil || slices.Contains(held, a) {
			continue
		}
		out = append(out, raftstore.AckRelease{VIP: vip, Node: self, Epoch: o.Epoch})
	}
	slices.SortFunc(out, func(a, b raftstore.AckRelease) int {
		return netip.MustParseAddr(a.VIP).Compare(netip.MustParseAddr(b.VIP))
	})
	return out
}

// ackRetry is how long an ack may go unconfirmed in the applied state before it
// is sent again: a forward lost with a leader change must not leave the leader
// waiting for the fence.
const ackRetry = 100 * time.Millisecond

// acker sends the confirmations from the announce loop without blocking it: one
// forward at a time, all owed acks in one batch, each resent after ackRetry
// while the applied state still shows it unconfirmed.
type acker struct {
	sent     map[raftstore.AckRelease]time.Time // last attempt of each owed ack
	inFlight atomic.Bool
}

// due records and returns the acks in owed to send now: those never sent, or
// sent at least ackRetry before now. Acks no longer owed are forgotten.
func (a *acker) due(owed []raftstore.AckRelease, now time.Time) []raftstore.AckRelease {
	if a.sent == nil {
		a.sent = map[raftstore.AckRelease]time.Time{}
	}
	keep := make(map[raftstore.AckRelease]bool, len(owed))
	var out []raftstore.AckRelease
	for _, ack := range owed {
		keep[ack] = true
		if last, ok := a.sent[ack]; ok && now.Sub(last) < ackRetry {
			continue
		}
		a.sent[ack] = now
		out = append(out, ack)
	}
	for ack := range a.sent {
		if !keep[ack] {
			delete(a.sent, ack)
		}
	}
	return out
}

// ackCommand is one ack alone, or several in a batch (one forward, one entry).
func ackCommand(acks []raftstore.AckRelease) raftstore.Command {
	if len(acks) == 1 {
		return acks[0]
	}
	b := raftstore.Batch{Commands: make([]raftstore.Command, len(acks))}
	for i, ack := range acks {
		b.Commands[i] = ack
	}
	return b
}

// confirmReleases sends the acks this node owes for the state st it just made
// the interface match (held is what the interface carries now), unless a send
// is still running (the next pass retries).
func (d *Daemon) confirmReleases(a *acker, st raftstore.State, held []netip.Addr, now time.Time) {
	owed := releaseAcks(d.cfg.NodeName, st, held)
	if len(owed) == 0 || a.inFlight.Load() {
		return
	}
	acks := a.due(owed, now)
	if len(acks) == 0 {
		return
	}
	a.inFlight.Store(true)
	go func() {
		defer a.inFlight.Store(false)
		vips := make([]string, len(acks))
		for i, ack := range acks {
			vips[i] = ack.VIP
		}
		if err := d.node.Forward(ackCommand(acks), reportTimeout); err != nil {
			d.log.Warn("confirm VIP release to the leader; retrying", "vips", vips, "err", err)
			return
		}
		d.log.Info("released VIPs: off the interface, confirmed to the leader", "vips", vips)
	}()
}
