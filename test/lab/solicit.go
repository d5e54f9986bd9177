package lab

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// Solicitor makes the client ask for an IPv6 address with multicast Neighbor
// Solicitations at a fixed rate, the IPv6 twin of an arping spray: every node
// whose kernel answers for the address shows up in a capture.
type Solicitor struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

// Solicit starts count solicitations for target, one every every, from the
// client's eth0. The spray ends by itself after count; Stop ends it sooner.
func (l *Lab) Solicit(target netip.Addr, every time.Duration, count int) *Solicitor {
	l.t.Helper()
	var (
		pc  *ipv6.PacketConn
		ifi *net.Interface
	)
	err := l.RunInNS(l.client, func() error {
		var err error
		if ifi, err = net.InterfaceByName(Iface); err != nil {
			return err
		}
		c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		pc = c.IPv6PacketConn()
		var filter ipv6.ICMPFilter
		filter.SetAll(true)
		for _, f := range []func() error{
			func() error { return pc.SetMulticastHopLimit(ndp.HopLimit) },
			func() error { return pc.SetChecksum(true, 2) },
			func() error { return pc.SetICMPFilter(&filter) },
		} {
			if err := f(); err != nil {
				_ = c.Close()
				return err
			}
		}
		return nil
	})
	if err != nil {
		l.t.Fatalf("lab: solicit %s: %v", target, err)
	}
	ns := &ndp.NeighborSolicitation{
		TargetAddress: target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: ifi.HardwareAddr}},
	}
	b, err := ndp.MarshalMessage(ns)
	if err != nil {
		l.t.Fatalf("lab: solicit %s: %v", target, err)
	}
	dst, err := ndp.SolicitedNodeMulticast(target)
	if err != nil {
		l.t.Fatalf("lab: solicit %s: %v", target, err)
	}
	s := &Solicitor{stop: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer pc.Close()
		t := time.NewTicker(every)
		defer t.Stop()
		cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, Src: l.ClientIP6().AsSlice(), IfIndex: ifi.Index}
		for range count {
			if _, err := pc.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
				l.t.Logf("lab: solicit %s: %v", target, err)
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	l.addCloser(s.Stop)
	return s
}

// Stop ends the spray and waits for it; calling it twice is harmless.
func (s *Solicitor) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}
