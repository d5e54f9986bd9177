package daemon

import (
	"net"

	"github.com/vishvananda/netlink"
)

// linkIsUp is whether a link can carry announcements: administratively up and
// operationally up, or "unknown" as dummy and some virtual drivers report.
func linkIsUp(a *netlink.LinkAttrs) bool {
	if a == nil || a.Flags&net.FlagUp == 0 {
		return false
	}
	return a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown
}

// interfaceUp reports the real link state of name for node reports, instead of
// assuming an interface that exists is usable; a missing link is down.
func interfaceUp(name string) bool {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return false
	}
	return linkIsUp(l.Attrs())
}
