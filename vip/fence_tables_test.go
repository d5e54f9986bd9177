package vip

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/lab"
)

// secondIface is a macvlan on node 0's eth0 standing in for a VLAN or second NIC.
const secondIface = "vip1"

// TestFenceTablesPerInterface: two Holders in one namespace, one per interface,
// each with a fence table of its own. Letting one Holder's lease lapse silences
// only its VIP; the other Holder's VIP, renewed, keeps answering, and removing
// one Holder's tables leaves the other's in place.
func TestFenceTablesPerInterface(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1, lab.WithoutIPv6())
	for _, s := range [][]string{
		{"sysctl", "-q", "-w", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf." + lab.Iface + ".arp_ignore=1"},
		{"ip", "link", "add", secondIface, "link", lab.Iface, "type", "macvlan", "mode", "bridge"},
		{"ip", "link", "set", secondIface, "up"},
	} {
		if _, err := l.Exec(l.Node(0), s...); err != nil {
			t.Fatal(err)
		}
	}
	main, _ := fencedHolder(t, l, 0)
	defer main.Close()
	var second *Holder
	inNS(t, l, l.Node(0), func() error {
		var err error
		if second, err = NewHolder(secondIface, slog.New(slog.DiscardHandler)); err != nil {
			return err
		}
		leftover, err := second.EnableFenceTable(FenceTable + "-" + secondIface)
		if leftover {
			t.Error("a fresh namespace reported leftover tables for the second interface")
		}
		return err
	})
	defer second.Close()

	if err := main.Set(leasesFrom(time.Hour, vip4)); err != nil {
		t.Fatal(err)
	}
	lab.Eventually(t, 10*time.Second, "the second interface's VIP answers while renewed", func() error {
		if err := second.Set(leasesFrom(300*time.Millisecond, vip4b)); err != nil {
			return err
		}
		return answers(l, vip4b)
	})
	// The second Holder stops renewing; the main one's lease is long.
	time.Sleep(400 * time.Millisecond)
	if err := answers(l, vip4b); err == nil {
		t.Error("the second interface's VIP answered after its lease expired")
	}
	if err := answers(l, vip4); err != nil {
		t.Errorf("the main interface's VIP fell silent with the other table's lease: %v", err)
	}
	if err := second.RemoveAll(); err != nil {
		t.Fatal(err)
	}
	out := ruleset(t, l)
	if !strings.Contains(out, vip4.String()) {
		t.Errorf("removing the second interface's tables touched the main table:\n%s", out)
	}
	if err := answers(l, vip4); err != nil {
		t.Errorf("the main interface's VIP stopped answering after the other tables went: %v", err)
	}
	if err := main.RemoveAll(); err != nil {
		t.Fatal(err)
	}
}
