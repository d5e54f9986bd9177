package daemon

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestLinkIsUp proves only a link that is both admin-up and not operationally
// down counts as able to announce.
func TestLinkIsUp(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    *netlink.LinkAttrs
		want bool
	}{
		{"missing", nil, false},
		{"admin down", &netlink.LinkAttrs{OperState: netlink.OperUp}, false},
		{"up", &netlink.LinkAttrs{Flags: net.FlagUp, OperState: netlink.OperUp}, true},
		{"no carrier", &netlink.LinkAttrs{Flags: net.FlagUp, OperState: netlink.OperDown}, false},
		{"lower layer down", &netlink.LinkAttrs{Flags: net.FlagUp, OperState: netlink.OperLowerLayerDown}, false},
		{"dummy reports unknown", &netlink.LinkAttrs{Flags: net.FlagUp, OperState: netlink.OperUnknown}, true},
	} {
		if got := linkIsUp(tc.a); got != tc.want {
			t.Errorf("%s: linkIsUp = %v, want %v", tc.name, got, tc.want)
		}
	}
}
