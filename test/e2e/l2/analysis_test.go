package l2_test

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/test/lab"
)

// Lines as tcpdump -l -n -e prints them in the lab.
const (
	garpN3    = "03:56:13.403489 02:72:76:00:00:14 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 60: Request who-has 198.51.100.101 tell 198.51.100.101, length 46"
	replyN3   = "03:56:13.403569 02:72:76:00:00:14 > 02:72:76:00:00:50, ethertype ARP (0x0806), length 42: Reply 198.51.100.101 is-at 02:72:76:00:00:14, length 28"
	replyN2   = "03:56:13.423699 02:72:76:00:00:13 > 02:72:76:00:00:50, ethertype ARP (0x0806), length 42: Reply 198.51.100.101 is-at 02:72:76:00:00:13, length 28"
	question  = "03:56:13.423000 02:72:76:00:00:50 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 198.51.100.101 tell 198.51.100.50, length 28"
	otherVIP  = "03:56:13.423800 02:72:76:00:00:13 > 02:72:76:00:00:50, ethertype ARP (0x0806), length 42: Reply 198.51.100.102 is-at 02:72:76:00:00:13, length 28"
	naN1      = "04:12:28.152256 02:72:76:00:00:12 > 33:33:00:00:00:01, ethertype IPv6 (0x86dd), length 86: 2001:db8:100::100 > ff02::1: ICMP6, neighbor advertisement, tgt is 2001:db8:100::100, length 32"
	solicitNS = "04:12:28.150000 02:72:76:00:00:50 > 33:33:ff:00:01:00, ethertype IPv6 (0x86dd), length 86: 2001:db8:100::50 > ff02::1:ff00:100: ICMP6, neighbor solicitation, who has 2001:db8:100::100, length 32"
)

func TestClaims(t *testing.T) {
	v4 := netip.MustParseAddr("198.51.100.101")
	got := lab.Claims([]string{garpN3, replyN3, question, replyN2, otherVIP}, v4)
	var macs []string
	for _, c := range got {
		macs = append(macs, c.MAC)
	}
	want := []string{"02:72:76:00:00:14", "02:72:76:00:00:14", "02:72:76:00:00:13"}
	if !slices.Equal(macs, want) {
		t.Errorf("claims of %s: %v, want %v (the client's question and other VIPs are no claims)", v4, macs, want)
	}
	v6 := netip.MustParseAddr("2001:db8:100::100")
	got = lab.Claims([]string{solicitNS, naN1}, v6)
	if len(got) != 1 || got[0].MAC != "02:72:76:00:00:12" {
		t.Errorf("claims of %s: %+v, want only node1's advertisement", v6, got)
	}
}

func TestSingleSpeaker(t *testing.T) {
	c := func(macs ...string) []lab.Claim {
		var out []lab.Claim
		for _, m := range macs {
			out = append(out, lab.Claim{Line: "x", MAC: m})
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		in    []lab.Claim
		order []string
		ok    bool
	}{
		{"none", nil, nil, true},
		{"one owner", c("a", "a", "a"), []string{"a"}, true},
		{"a clean move", c("a", "a", "b", "b"), []string{"a", "b"}, true},
		{"two moves", c("a", "b", "c"), []string{"a", "b", "c"}, true},
		{"flap back", c("a", "b", "a"), nil, false},
		{"overlap", c("a", "b", "a", "b"), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			order, err := lab.SingleSpeaker(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("singleSpeaker error %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && !slices.Equal(order, tc.order) {
				t.Errorf("order %v, want %v", order, tc.order)
			}
		})
	}
}

func TestProbeSeq(t *testing.T) {
	for _, tc := range []struct {
		round  uint64
		target int
	}{{0, 0}, {1, 999}, {123456, 1<<20 - 1}} {
		r, i := unpackSeq(probeSeq(tc.round, tc.target))
		if r != tc.round || i != tc.target {
			t.Errorf("probeSeq(%d, %d) unpacks to (%d, %d)", tc.round, tc.target, r, i)
		}
	}
}

func TestFirstOtherAndMaxGaps(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	hits := [][]hit{
		{{at(0), "old"}, {at(10), "old"}, {at(20), "old"}, {at(700), "new"}, {at(710), "new"}},
		{{at(0), "old"}, {at(5), "new"}, {at(15), "new"}},
		{{at(0), "old"}},
	}
	first := firstOther(hits, "old", at(10))
	if !first[0].Equal(at(700)) || !first[1].Equal(at(15)) || !first[2].IsZero() {
		t.Errorf("firstOther = %v", first)
	}
	gaps := maxGaps(hits, at(0), at(720))
	want := []time.Duration{680 * time.Millisecond, 705 * time.Millisecond, 720 * time.Millisecond}
	if !slices.Equal(gaps, want) {
		t.Errorf("maxGaps = %v, want %v", gaps, want)
	}
	if p50, mx := quantiles(want); p50 != 705*time.Millisecond || mx != 720*time.Millisecond {
		t.Errorf("quantiles = %s %s", p50, mx)
	}
}

func TestWantL2Statuses(t *testing.T) {
	st := stateOwners(map[string]string{"198.51.100.100": "node1", "2001:db8:100::100": "node1", "198.51.100.101": "node3"})
	got := wantL2Statuses(st, map[string][]netip.Addr{
		"dual":  {netip.MustParseAddr("2001:db8:100::100"), netip.MustParseAddr("198.51.100.100")},
		"c1":    {netip.MustParseAddr("198.51.100.101")},
		"unown": {netip.MustParseAddr("198.51.100.109")},
	})
	want := []string{"node1 l2/dual 198.51.100.100,2001:db8:100::100", "node3 l2/c1 198.51.100.101"}
	if !slices.Equal(got, want) {
		t.Errorf("wantL2Statuses = %v, want %v", got, want)
	}
}

func stateOwners(owners map[string]string) raftstore.State {
	st := raftstore.NewState()
	for vip, node := range owners {
		st.Owners[vip] = raftstore.Owner{VIP: vip, Node: node, Epoch: 1}
	}
	return st
}
