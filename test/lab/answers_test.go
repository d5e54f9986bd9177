package lab

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestARPAnswers(t *testing.T) {
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
	got := ARPAnswers(lines, netip.MustParseAddr("198.51.100.100"), netip.MustParseAddr("198.51.100.50"))
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
	clean := ARPAnswers(lines[:4], netip.MustParseAddr("198.51.100.100"), netip.MustParseAddr("198.51.100.50"))
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
