package lab

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestAnswersTo(t *testing.T) {
	const (
		req   = " 02:72:76:00:00:50 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 198.51.100.100 tell 198.51.100.50, length 28"
		other = " 02:72:76:00:00:50 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 198.51.100.101 tell 198.51.100.50, length 28"
		grat  = " 02:72:76:00:00:12 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 198.51.100.100 tell 198.51.100.100, length 28"
		// the announcer's second gratuitous frame: a reply to broadcast
		gratReply = " 02:72:76:00:00:12 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Reply 198.51.100.100 is-at 02:72:76:00:00:12, length 28"
	)
	reply := func(mac string) string {
		return " " + mac + " > 02:72:76:00:00:50, ethertype ARP (0x0806), length 42: Reply 198.51.100.100 is-at " + mac + ", length 28"
	}
	a, b := "02:72:76:00:00:11", "02:72:76:00:00:12"
	lines := []string{
		"12:00:00.000000" + req,
		"12:00:00.001000" + reply(a),
		"12:00:00.001500" + gratReply, // not an answer: broadcast, not to the client
		"12:00:00.020000" + req,
		"12:00:00.021000" + reply(a),
		"12:00:00.021500" + grat,
		"12:00:00.022000" + reply("02:72:76:00:00:12"), // a second MAC answers request 1
		"12:00:00.040000" + other,
		"12:00:00.041000" + req,
		"12:00:00.060000" + req, // unanswered
		"12:00:00.080000" + req,
		"12:00:00.081000" + reply(b),
		"12:00:00.081100" + reply(b), // one MAC twice is not a double answer
		"12:00:00.100000" + req,
		"12:00:00.101000" + reply(b),
		"12:00:00.101100" + reply(a), // the last request answered twice too
	}
	got := AnswersTo(lines, netip.MustParseAddr("198.51.100.100"), netip.MustParseAddr("198.51.100.50"))
	if got.Requests != 6 {
		t.Errorf("requests %d, want 6 (not the other address's, not the gratuitous one)", got.Requests)
	}
	if want := []int{1, 5}; !reflect.DeepEqual(got.Double, want) {
		t.Errorf("double-answered requests %v, want %v", got.Double, want)
	}
	if len(got.Replies) != 7 {
		t.Fatalf("replies %+v, want 7", got.Replies)
	}
	last, first, ok := got.Switch()
	if !ok || last.MAC != a || first.MAC != b || first.At.Sub(last.At) != time.Millisecond {
		t.Errorf("switch %+v -> %+v (%v), want a's reply at .021 then b's at .022", last, first, ok)
	}
	clean := AnswersTo(lines[:4], netip.MustParseAddr("198.51.100.100"), netip.MustParseAddr("198.51.100.50"))
	if clean.Requests != 2 || clean.Double != nil {
		t.Errorf("clean capture: %+v", clean)
	}
	if _, _, ok := clean.Switch(); ok {
		t.Error("a capture with one MAC has no switch")
	}
}

func TestMentions(t *testing.T) {
	lines := []string{
		"a Request who-has 198.51.100.100 tell 198.51.100.50, length 28",
		"b Request who-has 198.51.100.10 tell 198.51.100.50, length 28",
		"c Reply 198.51.100.100 is-at 02:72:76:00:00:11, length 28",
		"d Request who-has 198.51.100.1000 tell 198.51.100.50, length 28",
	}
	got := Mentions(lines, netip.MustParseAddr("198.51.100.10"))
	if want := []string{lines[1]}; !reflect.DeepEqual(got, want) {
		t.Errorf("Mentions = %q, want %q (not .100, a longer address)", got, want)
	}
}

// TestAnswersToNDP reads the lines a real tcpdump printed for NDP in the lab.
func TestAnswersToNDP(t *testing.T) {
	const (
		clientMAC = "02:72:76:00:00:50"
		req       = " " + clientMAC + " > 33:33:ff:00:01:00, ethertype IPv6 (0x86dd), length 86: 2001:db8:100::50 > ff02::1:ff00:100: ICMP6, neighbor solicitation, who has 2001:db8:100::100, length 32"
		// a node's own solicitation for the VIP (duplicate address detection) asks nothing of ours
		dad = " 02:72:76:00:00:13 > 33:33:ff:00:01:00, ethertype IPv6 (0x86dd), length 86: :: > ff02::1:ff00:100: ICMP6, neighbor solicitation, who has 2001:db8:100::100, length 32"
		// an unsolicited advertisement goes to all nodes, not to the client
		unsolicited = " 02:72:76:00:00:12 > 33:33:00:00:00:01, ethertype IPv6 (0x86dd), length 86: 2001:db8:100::100 > ff02::1: ICMP6, neighbor advertisement, tgt is 2001:db8:100::100, length 32"
		otherTarget = " 02:72:76:00:00:11 > " + clientMAC + ", ethertype IPv6 (0x86dd), length 86: 2001:db8:100::101 > 2001:db8:100::50: ICMP6, neighbor advertisement, tgt is 2001:db8:100::101, length 32"
	)
	adv := func(mac string) string {
		return " " + mac + " > " + clientMAC + ", ethertype IPv6 (0x86dd), length 86: 2001:db8:100::100 > 2001:db8:100::50: ICMP6, neighbor advertisement, tgt is 2001:db8:100::100, length 32"
	}
	a, b := "02:72:76:00:00:11", "02:72:76:00:00:12"
	lines := []string{
		"12:00:00.000000" + req,
		"12:00:00.001000" + adv(a),
		"12:00:00.010000" + dad,
		"12:00:00.011000" + unsolicited, // not an answer
		"12:00:00.020000" + req,
		"12:00:00.021000" + adv(a),
		"12:00:00.021500" + otherTarget,
		"12:00:00.022000" + adv(b), // a second MAC answers request 1
		"12:00:00.040000" + req,
		"12:00:00.041000" + adv(b),
	}
	vip, client := netip.MustParseAddr("2001:db8:100::100"), netip.MustParseAddr("2001:db8:100::50")
	got := AnswersTo(lines, vip, client)
	if got.Requests != 3 {
		t.Errorf("requests %d, want 3 (not the node's own solicitation)", got.Requests)
	}
	if want := []int{1}; !reflect.DeepEqual(got.Double, want) {
		t.Errorf("double-answered requests %v, want %v", got.Double, want)
	}
	if len(got.Replies) != 4 {
		t.Fatalf("replies %+v, want 4 (not the unsolicited advertisement, not the other target)", got.Replies)
	}
	last, first, ok := got.Switch()
	if !ok || last.MAC != a || first.MAC != b || first.At.Sub(last.At) != time.Millisecond {
		t.Errorf("switch %+v -> %+v (%v), want a's reply at .021 then b's at .022", last, first, ok)
	}
	if v4 := AnswersTo(lines, netip.MustParseAddr("198.51.100.100"), netip.MustParseAddr("198.51.100.50")); v4.Requests != 0 || len(v4.Replies) != 0 {
		t.Errorf("NDP lines read as answers about an IPv4 address: %+v", v4)
	}
}
