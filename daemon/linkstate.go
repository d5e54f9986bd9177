package daemon

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
)

// interfaceCheckInterval is how often the interface is compared with the held VIPs
// even without a netlink notification: the net under a lost notification.
const interfaceCheckInterval = time.Second

// linkReportRetry spaces the attempts to get a link-state report committed.
const linkReportRetry = 200 * time.Millisecond

// linkIsUp is whether a link can carry announcements: administratively up and
// operationally up, or "unknown" as dummy and some virtual drivers report.
func linkIsUp(a *netlink.LinkAttrs) bool {
	if a == nil || a.Flags&net.FlagUp == 0 {
		return false
	}
	return a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown
}

// interfaceUp reports the real link state of name for node reports, instead of
// assuming an interface that exists is usable; a missing link is down.
func interfaceUp(name string) bool {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return false
	}
	return linkIsUp(l.Attrs())
}

// interfaceLoop keeps every interface matching its Holder's VIPs (vip.Holder.Watch:
// missing VIPs back, strays gone, the name followed, announcements on link up) and
// reports every change of a link's state to the leader, retrying until it is
// committed, so the leader moves the VIPs of that interface's pools away while the
// link is down or gone and brings them back when it is up.
func (d *Daemon) interfaceLoop(ctx context.Context) {
	changed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.reportLinkChanges(ctx, changed)
	}()
	for _, name := range d.holderNames() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := d.holders[name].Watch(ctx, interfaceCheckInterval, func(up bool) {
				d.log.Warn("interface link state changed: reporting it to the leader", "interface", name, "up", up)
				select {
				case changed <- struct{}{}:
				default:
				}
			})
			if err != nil {
				d.log.Error("interface watch stopped", "interface", name, "err", err)
			}
		}()
	}
	wg.Wait()
}

// reportLinkChanges sends a node report after every signal on changed until one is
// committed; the report reads the link itself, so signals that pile up meanwhile
// are covered by one report.
func (d *Daemon) reportLinkChanges(ctx context.Context, changed <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		for !d.report() {
			t := time.NewTimer(linkReportRetry)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}
