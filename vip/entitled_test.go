package vip

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// countingSender records every packet instead of sending it.
type countingSender struct {
	mu   sync.Mutex
	sent map[netip.Addr]int
	onTx chan netip.Addr
}

func (s *countingSender) send(vip netip.Addr) (int, error) {
	s.mu.Lock()
	s.sent[vip]++
	s.mu.Unlock()
	if s.onTx != nil {
		select {
		case s.onTx <- vip:
		default:
		}
	}
	return 1, nil
}

func (s *countingSender) close() error { return nil }

func (s *countingSender) count(vip netip.Addr) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[vip]
}

// fakeHolder is a Holder without netlink: enough for what it announces.
func fakeHolder(t *testing.T, s *countingSender, held ...netip.Addr) *Holder {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	h := &Holder{
		iface:   "eth0",
		logger:  log,
		ann:     &Announcer{iface: "eth0", logger: log, arp: s, ndp: s},
		ctx:     ctx,
		cancel:  cancel,
		held:    map[netip.Addr]uint64{},
		expires: map[netip.Addr]time.Time{},
		gen:     1,
	}
	for _, v := range held {
		h.held[v] = 1
		h.expires[v] = time.Now().Add(time.Hour)
	}
	t.Cleanup(func() { cancel(); h.wg.Wait() })
	return h
}

var (
	entV4 = netip.MustParseAddr("198.51.100.100")
	entV6 = netip.MustParseAddr("2001:db8:100::100")
)

func TestAnnounceAsksEntitlementPerVIP(t *testing.T) {
	for _, tc := range []struct {
		name     string
		entitled Entitled
		want     []netip.Addr
	}{
		{"no check", nil, []netip.Addr{entV4, entV6}},
		{"all entitled", func(netip.Addr) bool { return true }, []netip.Addr{entV4, entV6}},
		{"one given away", func(v netip.Addr) bool { return v != entV6 }, []netip.Addr{entV4}},
		{"none", func(netip.Addr) bool { return false }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &countingSender{sent: map[netip.Addr]int{}}
			h := fakeHolder(t, s)
			h.SetEntitled(tc.entitled)
			h.mu.Lock()
			got, err := h.announce([]netip.Addr{entV4, entV6})
			h.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("announced %v, want %v", got, tc.want)
			}
			for _, v := range []netip.Addr{entV4, entV6} {
				want := 0
				if slices.Contains(tc.want, v) {
					want = burstCount
				}
				if n := s.count(v); n != want {
					t.Errorf("%s: %d packets, want %d", v, n, want)
				}
			}
		})
	}
}

func TestAnnounceAllSkipsVIPsNoLongerEntitled(t *testing.T) {
	s := &countingSender{sent: map[netip.Addr]int{}}
	h := fakeHolder(t, s, entV4, entV6)
	h.SetEntitled(func(v netip.Addr) bool { return v == entV4 })
	if err := h.AnnounceAll(); err != nil {
		t.Fatal(err)
	}
	if s.count(entV4) != burstCount || s.count(entV6) != 0 {
		t.Fatalf("packets v4 %d v6 %d, want %d and 0", s.count(entV4), s.count(entV6), burstCount)
	}
}

func TestFollowUpsRecheckEntitlementAndNeverResume(t *testing.T) {
	s := &countingSender{sent: map[netip.Addr]int{}, onTx: make(chan netip.Addr, 64)}
	h := fakeHolder(t, s, entV4, entV6)
	var mu sync.Mutex
	lost := map[netip.Addr]bool{entV6: true} // lost between the first burst and the follow-ups
	h.SetEntitled(func(v netip.Addr) bool { mu.Lock(); defer mu.Unlock(); return !lost[v] })
	h.mu.Lock()
	h.followUp([]netip.Addr{entV4, entV6}, 1)
	h.mu.Unlock()
	waitSends := func(n int) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for s.count(entV4) < n {
			select {
			case <-s.onTx:
			case <-deadline:
				t.Fatalf("%d packets for %s, want %d", s.count(entV4), entV4, n)
			}
		}
	}
	waitSends(burstCount) // the 100 ms follow-up
	if n := s.count(entV6); n != 0 {
		t.Fatalf("a VIP lost before the first follow-up got %d packets", n)
	}
	// Entitled again (say the state flapped back): the follow-ups still leave it
	// out; a new take would announce it afresh.
	mu.Lock()
	lost[entV6] = false
	mu.Unlock()
	waitSends(2 * burstCount) // the 1 s follow-up
	if n := s.count(entV6); n != 0 {
		t.Fatalf("a VIP dropped from the follow-ups got %d packets at a later one", n)
	}
}
