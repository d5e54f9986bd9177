package vip

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inNamespace runs fn on an OS thread inside ns. Opening sockets and reading
// interface tables depend on the calling thread's network namespace, and the
// Announcer and Holder remember the namespace they were created in so that
// their later calls, from any goroutine, act on the same interface. fn runs on
// a fresh goroutine; if the thread cannot be switched back it stays locked and
// the runtime discards it when the goroutine ends.
func inNamespace(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		cur, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current network namespace: %w", err)
			return
		}
		defer cur.Close()
		if cur.Equal(ns) {
			err := fn()
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(cur); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("restore network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// netlinkIn opens a netlink route handle whose socket lives in ns. Not
// netlink.NewHandleAt: that always calls setns, even into the namespace the
// thread is in, and setns needs CAP_SYS_ADMIN, which the static pod does not
// have (it has NET_ADMIN, NET_RAW and SYS_NICE); inNamespace switches only when
// the thread is elsewhere.
func netlinkIn(ns netns.NsHandle) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := inNamespace(ns, func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	return h, err
}

// nftablesIn opens an nftables connection whose socket lives in ns, for the
// same reason not through nftables.WithNetNSFd (which always calls setns).
func nftablesIn(ns netns.NsHandle, opts ...nftables.ConnOption) (*nftables.Conn, error) {
	var c *nftables.Conn
	err := inNamespace(ns, func() error {
		var err error
		c, err = nftables.New(opts...)
		return err
	})
	return c, err
}
