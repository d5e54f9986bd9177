package vip

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
)

// Watch timing: a burst of kernel notifications (a link flap flushes every
// IPv6 address at once, a Set adds a thousand) is settled for settleDelay and
// reconciled once; a subscription that failed is retried after resubscribeDelay.
const (
	settleDelay      = 5 * time.Millisecond
	resubscribeDelay = 200 * time.Millisecond
	// subscribeBuffer is the netlink receive buffer of each subscription, large
	// enough for a thousand address notifications.
	subscribeBuffer = 1 << 20
)

// Watch keeps the interface matching the Holder until ctx is done or the
// Holder is closed: it runs Reconcile when the kernel reports an address
// change on the link or any change of a link (netlink subscriptions in the
// Holder's namespace), and every interval in case a notification was lost.
// onLink, when not nil, is called with the new state each time the interface
// goes up, down or away, so the daemon can report it to the leader.
func (h *Holder) Watch(ctx context.Context, every time.Duration, onLink func(up bool)) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrClosed
	}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-h.ctx.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	for ctx.Err() == nil {
		if err := h.watchOnce(ctx, every, onLink); err != nil {
			h.logger.Warn("interface notifications lost, subscribing again", "err", err)
		}
		t := time.NewTimer(resubscribeDelay)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	return nil
}

// errSubscriptionClosed is why watchOnce returns when the kernel side closed.
var errSubscriptionClosed = errors.New("netlink subscription closed")

// watchOnce runs one pair of subscriptions until ctx is done or one of them
// fails.
func (h *Holder) watchOnce(ctx context.Context, every time.Duration, onLink func(up bool)) error {
	done := make(chan struct{})
	defer close(done)
	addrs := make(chan netlink.AddrUpdate, 256)
	links := make(chan netlink.LinkUpdate, 64)
	failed := make(chan error, 2)
	report := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	// The sockets are opened on a thread in h.ns rather than through the
	// options' Namespace, which always calls setns (CAP_SYS_ADMIN, which the
	// static pod does not have).
	err := inNamespace(h.ns, func() error {
		if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{
			ErrorCallback: report, ReceiveBufferSize: subscribeBuffer,
		}); err != nil {
			return fmt.Errorf("subscribe to address changes: %w", err)
		}
		if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{
			ErrorCallback: report, ReceiveBufferSize: subscribeBuffer,
		}); err != nil {
			return fmt.Errorf("subscribe to link changes: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	armed := false
	arm := func() {
		if !armed {
			armed = true
			settle.Reset(settleDelay)
		}
	}
	// The first pass covers whatever changed before the subscriptions started.
	h.pass(onLink)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		case u, ok := <-addrs:
			if !ok {
				return errSubscriptionClosed
			}
			if idx := h.linkIndex.Load(); idx == 0 || int64(u.LinkIndex) == idx {
				arm()
			}
		case u, ok := <-links:
			if !ok {
				return errSubscriptionClosed
			}
			if a := u.Attrs(); a != nil && (a.Name == h.iface || int64(a.Index) == h.linkIndex.Load()) {
				arm()
			}
		case <-settle.C:
			armed = false
			h.pass(onLink)
		case <-tick.C:
			h.pass(onLink)
		}
	}
}

// pass runs one Reconcile for Watch and tells onLink about a link change.
func (h *Holder) pass(onLink func(up bool)) {
	r, err := h.Reconcile()
	if errors.Is(err, ErrClosed) {
		return
	}
	if err != nil {
		h.logger.Warn("make the interface match the held VIPs", "err", err)
	}
	if r.Changed {
		h.logger.Debug("interface state changed", "up", r.Up)
		if onLink != nil {
			onLink(r.Up)
		}
	}
}
