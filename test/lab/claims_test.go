package lab

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestClaimsAndSingleSpeaker(t *testing.T) {
	lines := []string{
		"12:00:00.000001 02:72:76:00:00:50 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 198.51.100.100 tell 198.51.100.50, length 28",
		"12:00:00.000002 02:72:76:00:00:11 > 02:72:76:00:00:50, ethertype ARP (0x0806), length 42: Reply 198.51.100.100 is-at 02:72:76:00:00:11, length 28",
		"12:00:00.000003 02:72:76:00:00:12 > 02:72:76:00:00:50, ethertype ARP (0x0806), length 42: Reply 198.51.100.101 is-at 02:72:76:00:00:12, length 28",
		"12:00:00.000004 02:72:76:00:00:12 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 198.51.100.100 tell 198.51.100.100, length 28",
		"12:00:00.000005 02:72:76:00:00:13 > 33:33:00:00:00:01, ethertype IPv6 (0x86dd), length 86: 2001:db8:100::100 > ff02::1: ICMP6, neighbor advertisement, tgt is 2001:db8:100::100, length 32",
	}
	v4 := Claims(lines, netip.MustParseAddr("198.51.100.100"))
	var macs []string
	for _, c := range v4 {
		macs = append(macs, c.MAC)
	}
	if want := []string{"02:72:76:00:00:11", "02:72:76:00:00:12"}; !reflect.DeepEqual(macs, want) {
		t.Fatalf("IPv4 claims %v, want %v (the client's request and the other VIP do not count)", macs, want)
	}
	if v6 := Claims(lines, netip.MustParseAddr("2001:db8:100::100")); len(v6) != 1 || v6[0].MAC != "02:72:76:00:00:13" {
		t.Fatalf("IPv6 claims %+v", v6)
	}
	order, err := SingleSpeaker(v4)
	if err != nil || len(order) != 2 {
		t.Fatalf("a clean move: order %v, err %v", order, err)
	}
	flap := append(v4, Claim{Line: "again", MAC: "02:72:76:00:00:11"})
	if _, err := SingleSpeaker(flap); err == nil || !strings.Contains(err.Error(), "two nodes answered") {
		t.Fatalf("a flap back must be refused, got %v", err)
	}
}
