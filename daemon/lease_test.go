package daemon

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/raftvip/raftvip/vip"
)

func TestLeaseLeft(t *testing.T) {
	t0 := time.Now()
	for _, tc := range []struct {
		name     string
		verified time.Time
		now      time.Time
		want     time.Duration
	}{
		{"never verified", time.Time{}, t0, 0},
		{"just verified", t0, t0, 75 * time.Millisecond},
		{"part used", t0, t0.Add(25 * time.Millisecond), 50 * time.Millisecond},
		{"exactly used", t0, t0.Add(75 * time.Millisecond), 0},
		{"long gone", t0, t0.Add(2 * time.Second), 75*time.Millisecond - 2*time.Second},
	} {
		if got := leaseLeft(tc.verified, tc.now, 75*time.Millisecond); got != tc.want {
			t.Errorf("%s: leaseLeft = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestDecidePass(t *testing.T) {
	const lease, fence = 75 * time.Millisecond, 300 * time.Millisecond
	t0 := time.Now()
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	for _, tc := range []struct {
		name                         string
		raftLeader                   bool
		verified, contact, last, now time.Time
		want                         passState
	}{
		{"leader within its lease", true, ms(0), time.Time{}, ms(5), ms(10),
			passState{leader: true, cpTTL: 65 * time.Millisecond, svcTTL: 290 * time.Millisecond}},
		{"new leader not yet verified", true, time.Time{}, time.Time{}, time.Time{}, ms(0),
			passState{fenced: true}},
		{"leader past its lease keeps service VIPs", true, ms(0), time.Time{}, ms(70), ms(80),
			passState{cpTTL: -5 * time.Millisecond, svcTTL: 220 * time.Millisecond}},
		{"leader past the fence timeout", true, ms(0), time.Time{}, ms(290), ms(300),
			passState{fenced: true, cpTTL: -225 * time.Millisecond}},
		{"leader woken from a freeze", true, ms(1990), time.Time{}, ms(0), ms(2000),
			passState{fenced: true, cpTTL: 65 * time.Millisecond, svcTTL: 290 * time.Millisecond}},
		{"follower in contact", false, time.Time{}, ms(0), ms(40), ms(50),
			passState{svcTTL: fence}},
		{"follower never heard a leader", false, time.Time{}, time.Time{}, time.Time{}, ms(0),
			passState{fenced: true, svcTTL: fence}},
		{"follower cut off", false, time.Time{}, ms(0), ms(290), ms(301),
			passState{fenced: true, svcTTL: fence}},
		{"follower just inside the fence", false, time.Time{}, ms(0), ms(290), ms(300),
			passState{svcTTL: fence}},
		{"follower woken from a freeze with fresh contact", false, time.Time{}, ms(2000), ms(0), ms(2001),
			passState{fenced: true, svcTTL: fence}},
		{"follower loop just under the stall bound", false, time.Time{}, ms(100), ms(0), ms(150),
			passState{svcTTL: fence}},
	} {
		got := decidePass(tc.raftLeader, tc.verified, tc.contact, tc.last, tc.now, lease, fence)
		if got != tc.want {
			t.Errorf("%s: decidePass = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestLeasesFor(t *testing.T) {
	cp := netip.MustParseAddr("198.51.100.100")
	svc := netip.MustParseAddr("198.51.100.200")
	svc6 := netip.MustParseAddr("2001:db8:100::200")
	now := time.Unix(1000, 0)
	got := leasesFor([]netip.Addr{cp, svc, svc6}, []netip.Addr{cp}, now, 40*time.Millisecond, 300*time.Millisecond)
	want := []vip.Lease{{VIP: cp, Until: now.Add(40 * time.Millisecond)}, {VIP: svc, Until: now.Add(300 * time.Millisecond)}, {VIP: svc6, Until: now.Add(300 * time.Millisecond)}}
	if !slices.Equal(got, want) {
		t.Fatalf("leasesFor = %v, want %v", got, want)
	}
	// A control-plane VIP never outlives the service lease either.
	if got := leasesFor([]netip.Addr{cp}, []netip.Addr{cp}, now, time.Second, 300*time.Millisecond); !got[0].Until.Equal(now.Add(300 * time.Millisecond)) {
		t.Fatalf("control-plane lease until %s, want the shorter now+300ms", got[0].Until)
	}
	// A lease already used up ends in the past: it is not stretched to a minimum.
	if got := leasesFor([]netip.Addr{cp}, []netip.Addr{cp}, now, -5*time.Millisecond, time.Second); !got[0].Until.Before(now) {
		t.Fatalf("an ended lease runs until %s, after the decision at %s", got[0].Until, now)
	}
	if got := leasesFor(nil, []netip.Addr{cp}, now, time.Second, time.Second); len(got) != 0 {
		t.Fatalf("no VIPs gave %v", got)
	}
}

func TestAnnounceCheckInterval(t *testing.T) {
	for _, tc := range []struct {
		lease, fence, want time.Duration
	}{
		{75 * time.Millisecond, 300 * time.Millisecond, 18750 * time.Microsecond},
		{time.Second, 300 * time.Millisecond, 50 * time.Millisecond},
		{10 * time.Millisecond, 30 * time.Millisecond, 5 * time.Millisecond},
	} {
		p := &Parsed{}
		p.Raft.LeaderLease, p.FenceTimeout = tc.lease, tc.fence
		if got := announceCheckInterval(p); got != tc.want {
			t.Errorf("lease %s fence %s: interval %s, want %s", tc.lease, tc.fence, got, tc.want)
		}
	}
}
