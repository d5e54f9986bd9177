package vip

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/raftvip/raftvip/test/lab"
)

// liveTimeouts is the timeout the kernel holds for each element of node 0's
// inet live sets, by VIP.
func liveTimeouts(t *testing.T, l *lab.Lab) map[netip.Addr]time.Duration {
	t.Helper()
	out := map[netip.Addr]time.Duration{}
	eachFenceElement(t, l, func(*nftables.Table) {}, func(set string, e nftables.SetElement) {
		if set == "live4" || set == "live6" {
			a, _ := netip.AddrFromSlice(e.Key)
			out[a] = e.Timeout
		}
	})
	return out
}

// TestFenceLeaseEndsAtItsUntil: a lease is a point in time. Written late (here
// 150 ms after the decision that granted 250 ms), the kernel gets only what is
// left; a lease that has already ended is not written at all, so its VIP stays
// silent, instead of being stretched to a minimum timeout.
func TestFenceLeaseEndsAtItsUntil(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1)
	h, _ := fencedHolder(t, l, 0)
	defer h.Close()
	if err := h.Set(leasesFrom(time.Hour, vip4, vip6)); err != nil {
		t.Fatal(err)
	}
	if err := answers(l, vip6); err != nil {
		t.Fatalf("%s with a current lease: %v", vip6, err)
	}
	decided := time.Now()
	late := []Lease{{VIP: vip4, Until: decided.Add(250 * time.Millisecond)}, {VIP: vip6, Until: decided.Add(-time.Millisecond)}}
	time.Sleep(150 * time.Millisecond)
	if err := h.Set(late); err != nil {
		t.Fatal(err)
	}
	got := liveTimeouts(t, l)
	if ttl, ok := got[vip4]; !ok || ttl > 100*time.Millisecond {
		t.Fatalf("lease for %s written 150 ms into a 250 ms grant: kernel timeout %s (present %v), want at most 100ms", vip4, ttl, ok)
	}
	if ttl, ok := got[vip6]; ok {
		t.Fatalf("an ended lease for %s is live in the kernel for %s", vip6, ttl)
	}
	if err := answers(l, vip6); err == nil {
		t.Fatalf("%s answers with an ended lease", vip6)
	}
}
