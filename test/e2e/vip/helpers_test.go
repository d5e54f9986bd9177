package vip_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/lab"
)

const (
	echoPort = 9000
	vip4     = "198.51.100.100"
	vip6     = "2001:db8:100::100"
)

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

// ping sends one ICMP echo from the client.
func ping(l *lab.Lab, ip netip.Addr) error {
	_, err := l.Exec(l.Client(), "ping", "-n", "-c", "1", "-W", "1", ip.String())
	return err
}
