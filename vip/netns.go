package vip

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
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
