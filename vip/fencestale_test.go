package vip

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/raftvip/raftvip/test/lab"
	"github.com/vishvananda/netns"
)

func TestStaleFenceTables(t *testing.T) {
	for _, tc := range []struct {
		name        string
		found, keep []string
		want        []string
	}{
		{"nothing found", nil, []string{"raftvip"}, nil},
		{"only this run's tables", []string{"raftvip", "raftvip", "raftvip-eth1", "raftvip-eth1"}, []string{"raftvip", "raftvip-eth1"}, nil},
		{"a removed pool interface", []string{"raftvip", "raftvip-eth1", "raftvip", "raftvip-eth1"}, []string{"raftvip"}, []string{"raftvip-eth1"}},
		{"--interface gone, pools on eth1 only", []string{"raftvip", "raftvip", "raftvip-eth1"}, []string{"raftvip-eth1"}, []string{"raftvip"}},
		{"several stale, sorted once each", []string{"raftvip-vlan20", "raftvip-eth2", "raftvip-vlan20", "raftvip-eth2"}, nil, []string{"raftvip-eth2", "raftvip-vlan20"}},
		{"other tables are not ours", []string{"filter", "nat", "raftvipx", "kube-proxy", "raftvip-eth1"}, []string{"raftvip-eth1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := staleFenceTables(tc.found, tc.keep); !slices.Equal(got, tc.want) {
				t.Errorf("staleFenceTables(%v, %v) = %v, want %v", tc.found, tc.keep, got, tc.want)
			}
		})
	}
}

// TestRemoveStaleFences: in a real namespace, a fence table left by a run that
// announced on another interface goes, with the address it kept silent; this
// run's table and a table that is not ours stay.
func TestRemoveStaleFences(t *testing.T) {
	t.Parallel()
	l := lab.New(t, 1)
	gone, kept := netip.MustParseAddr("198.51.100.150"), netip.MustParseAddr("198.51.100.151")
	var removed []string
	inNS(t, l, l.Node(0), func() error {
		ns, err := netns.Get()
		if err != nil {
			return err
		}
		defer ns.Close()
		for _, f := range []struct {
			table string
			vip   netip.Addr
		}{{"raftvip-gone0", gone}, {"raftvip-kept0", kept}} {
			fence, err := NewFenceTableAt(ns, f.table)
			if err != nil {
				return err
			}
			if err := fence.Install(); err != nil {
				return err
			}
			if err := fence.Write([]netip.Addr{f.vip}, []Lease{{VIP: f.vip, Until: time.Now().Add(time.Hour)}}); err != nil {
				return err
			}
			fence.Close()
		}
		// An earlier run's address, kept silent by the stale table until now.
		if err := AddAddress(lab.Iface, gone); err != nil {
			return err
		}
		conn, err := nftables.New(nftables.WithNetNSFd(int(ns)))
		if err != nil {
			return err
		}
		conn.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "not-ours"})
		if err := conn.Flush(); err != nil {
			return err
		}
		removed, err = RemoveStaleFences(ns, []string{"raftvip-kept0"})
		return err
	})
	if !slices.Equal(removed, []string{"raftvip-gone0"}) {
		t.Fatalf("removed %v, want [raftvip-gone0]", removed)
	}
	if got := listVIPs(t, l, 0); slices.Contains(got, gone) {
		t.Errorf("the address the stale table fenced is still on %s: %v", lab.Iface, got)
	}
	var all []string
	inNS(t, l, l.Node(0), func() error {
		ns, err := netns.Get()
		if err != nil {
			return err
		}
		defer ns.Close()
		conn, err := nftables.New(nftables.WithNetNSFd(int(ns)))
		if err != nil {
			return err
		}
		ts, err := conn.ListTables()
		for _, tb := range ts {
			all = append(all, tb.Name)
		}
		return err
	})
	if slices.Contains(all, "raftvip-gone0") || !slices.Contains(all, "raftvip-kept0") || !slices.Contains(all, "not-ours") {
		t.Errorf("tables after the cleanup: %v, want raftvip-kept0 and not-ours, not raftvip-gone0", all)
	}
}
