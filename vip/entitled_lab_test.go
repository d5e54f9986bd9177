package vip

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/lab"
)

func TestHolderFollowUpsStopWhenEntitlementIsLost(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1)
	h := newHolder(t, l, 0)
	var lost atomic.Bool
	h.SetEntitled(func(v netip.Addr) bool { return v != vip4 || !lost.Load() })
	c := l.Capture(l.Client(), lab.Iface, "arp or icmp6")
	if err := h.Set(leases(vip4, vip6)); err != nil {
		t.Fatal(err)
	}
	// The state gives vip4 away after the first burst; the announce loop has not
	// run Set again yet, so only the check at send time can keep it quiet.
	lost.Store(true)
	time.Sleep(followUpDelays[len(followUpDelays)-1] + 500*time.Millisecond)
	lines := c.Stop()
	req, rep, _ := announcementLines(lines, vip4)
	_, _, adv := announcementLines(lines, vip6)
	if req != burstCount || rep != burstCount {
		t.Errorf("vip4: %d requests and %d replies, want only the first burst (%d each)", req, rep, burstCount)
	}
	if want := (1 + len(followUpDelays)) * burstCount; adv != want {
		t.Errorf("vip6, still entitled: %d advertisements, want %d", adv, want)
	}
}
