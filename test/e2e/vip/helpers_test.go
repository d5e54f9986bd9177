package vip_test

import (
	"net/netip"

	"github.com/raftvip/raftvip/test/lab"
)

const (
	echoPort = 9000
	vip4     = "198.51.100.100"
	vip6     = "2001:db8:100::100"
)

// ping sends one ICMP echo from the client.
func ping(l *lab.Lab, ip netip.Addr) error {
	_, err := l.Exec(l.Client(), "ping", "-n", "-c", "1", "-W", "1", ip.String())
	return err
}
