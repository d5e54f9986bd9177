// The test router listens; Go's listeners default to Multipath TCP, which refuses
// the TCP options gobgp sets on its sockets.

//go:debug multipathtcp=0

// Package bgp is the end-to-end test of raftvip's BGP mode: three real agents
// (--mode bgp) in the nodes of a netns lab peer with a gobgp router in the
// client namespace, and the test asserts on what the router's RIB holds.
//
// The router is bgprouter's, run in a process of its own: the test binary
// re-executed inside the client namespace by `ip netns exec` (the bgprouter
// package says why), driven over net/rpc on a Unix socket.
package bgp

import (
	"os"
	"testing"

	"github.com/raftvip/raftvip/test/bgprouter"
)

// TestMain runs the router when the binary was started as its helper process,
// else the tests.
func TestMain(m *testing.M) {
	bgprouter.HelperMain(nil, nil)
	os.Exit(m.Run())
}
