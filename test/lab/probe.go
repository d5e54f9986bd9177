package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// probeLen is the probe payload: an 8-byte sequence number.
const probeLen = 8

// StartEcho runs a UDP echo server on port in every node namespace, on all
// addresses (so on VIPs the node takes later too). Each reply carries the
// probe's sequence number followed by the node's namespace name, and leaves
// from the address the probe was sent to, so a client probing a VIP sees
// which node answered. The servers stop at lab cleanup.
func (l *Lab) StartEcho(port int) {
	l.t.Helper()
	for _, ns := range l.nodes {
		network := []string{"udp4"}
		if l.cfg.ipv6 {
			network = append(network, "udp6")
		}
		for _, nw := range network {
			var conn net.PacketConn
			err := RunInNS(ns, func() error {
				var err error
				conn, err = net.ListenPacket(nw, fmt.Sprintf(":%d", port))
				return err
			})
			if err != nil {
				l.t.Fatalf("lab: echo server in %s: %v", ns, err)
			}
			srv, err := newEcho(conn, ns)
			if err != nil {
				_ = conn.Close()
				l.t.Fatalf("lab: echo server in %s: %v", ns, err)
			}
			if !l.addCloser(srv.close) {
				srv.close()
				l.t.Fatalf("lab: StartEcho after cleanup")
			}
			go srv.serve()
		}
	}
}

// echo answers probes on one socket.
type echo struct {
	conn net.PacketConn
	v4   *ipv4.PacketConn
	v6   *ipv6.PacketConn
	name string
	done chan struct{}
}

func newEcho(conn net.PacketConn, name string) (*echo, error) {
	e := &echo{conn: conn, name: name, done: make(chan struct{})}
	if conn.LocalAddr().(*net.UDPAddr).IP.To4() != nil {
		e.v4 = ipv4.NewPacketConn(conn)
		return e, e.v4.SetControlMessage(ipv4.FlagDst, true)
	}
	e.v6 = ipv6.NewPacketConn(conn)
	return e, e.v6.SetControlMessage(ipv6.FlagDst, true)
}

func (e *echo) serve() {
	defer close(e.done)
	buf := make([]byte, 1500)
	for {
		var (
			n   int
			src net.Addr
			dst net.IP
			err error
		)
		if e.v4 != nil {
			var cm *ipv4.ControlMessage
			n, cm, src, err = e.v4.ReadFrom(buf)
			if cm != nil {
				dst = cm.Dst
			}
		} else {
			var cm *ipv6.ControlMessage
			n, cm, src, err = e.v6.ReadFrom(buf)
			if cm != nil {
				dst = cm.Dst
			}
		}
		if err != nil {
			return
		}
		if n < probeLen {
			continue
		}
		reply := append(append([]byte(nil), buf[:probeLen]...), e.name...)
		if e.v4 != nil {
			_, _ = e.v4.WriteTo(reply, &ipv4.ControlMessage{Src: dst}, src)
		} else {
			_, _ = e.v6.WriteTo(reply, &ipv6.ControlMessage{Src: dst}, src)
		}
	}
}

func (e *echo) close() {
	_ = e.conn.Close()
	<-e.done
}

// ProbeReply is one answered probe.
type ProbeReply struct {
	Seq      uint64
	Sent     time.Time
	Received time.Time
	// Node is the namespace name of the node that answered.
	Node string
	From netip.Addr
}

// ProbeResult is what a Prober saw, replies in order of arrival.
type ProbeResult struct {
	Target  netip.AddrPort
	Every   time.Duration
	Sent    int
	Replies []ProbeReply
}

// Switch is a change of the answering node between consecutive replies.
type Switch struct {
	From, To string
	// LastFrom is when the last reply from the old node arrived, FirstTo when
	// the first from the new node did.
	LastFrom, FirstTo time.Time
	// Gap is FirstTo - LastFrom: the outage a client saw across the move.
	Gap time.Duration
}

// Switches lists every change of answering node, in order.
func (r ProbeResult) Switches() []Switch {
	var out []Switch
	for i := 1; i < len(r.Replies); i++ {
		prev, cur := r.Replies[i-1], r.Replies[i]
		if prev.Node != cur.Node {
			out = append(out, Switch{
				From: prev.Node, To: cur.Node,
				LastFrom: prev.Received, FirstTo: cur.Received,
				Gap: cur.Received.Sub(prev.Received),
			})
		}
	}
	return out
}

// MaxGap is the longest time between two consecutive replies.
func (r ProbeResult) MaxGap() time.Duration {
	var gap time.Duration
	for i := 1; i < len(r.Replies); i++ {
		gap = max(gap, r.Replies[i].Received.Sub(r.Replies[i-1].Received))
	}
	return gap
}

// Lost counts probes never answered.
func (r ProbeResult) Lost() int {
	seen := map[uint64]bool{}
	for _, rep := range r.Replies {
		seen[rep.Seq] = true
	}
	return r.Sent - len(seen)
}

// Prober sends a UDP probe to an echo server from inside a namespace at a
// fixed interval and records every reply with the node that sent it, for
// failover benchmarks: the longest gap and the gap across a change of owner.
type Prober struct {
	target netip.AddrPort
	every  time.Duration
	conn   net.PacketConn
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stop   sync.Once

	mu      sync.Mutex
	sent    []time.Time
	replies []ProbeReply
	notify  chan struct{}
}

// Probe starts probing target (an address served by StartEcho) from ns every
// interval until ctx ends or Stop is called. The lab stops it on cleanup.
func (l *Lab) Probe(ctx context.Context, ns string, target netip.AddrPort, every time.Duration) *Prober {
	l.t.Helper()
	if every <= 0 {
		l.t.Fatalf("lab: probe interval %v", every)
	}
	nw := "udp4"
	if target.Addr().Is6() {
		nw = "udp6"
	}
	var conn net.PacketConn
	err := RunInNS(ns, func() error {
		var err error
		conn, err = net.ListenPacket(nw, ":0")
		return err
	})
	if err != nil {
		l.t.Fatalf("lab: probe socket in %s: %v", ns, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Prober{target: target, every: every, conn: conn, cancel: cancel, notify: make(chan struct{})}
	if !l.addCloser(func() { p.Stop() }) {
		cancel()
		_ = conn.Close()
		l.t.Fatalf("lab: Probe after cleanup")
	}
	p.wg.Add(2)
	go p.receive()
	go p.send(ctx)
	return p
}

func (p *Prober) send(ctx context.Context) {
	defer p.wg.Done()
	defer p.conn.Close()
	dst := net.UDPAddrFromAddrPort(p.target)
	t := time.NewTicker(p.every)
	defer t.Stop()
	buf := make([]byte, probeLen)
	for seq := uint64(0); ; seq++ {
		binary.BigEndian.PutUint64(buf, seq)
		p.mu.Lock()
		p.sent = append(p.sent, time.Now())
		p.mu.Unlock()
		// A send can fail while the route or neighbour is gone; that is a
		// lost probe, which the result shows.
		_, _ = p.conn.WriteTo(buf, dst)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Prober) receive() {
	defer p.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		now := time.Now()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || n < probeLen {
			continue
		}
		seq := binary.BigEndian.Uint64(buf[:probeLen])
		r := ProbeReply{Seq: seq, Received: now, Node: string(buf[probeLen:n])}
		if ua, ok := from.(*net.UDPAddr); ok {
			r.From = ua.AddrPort().Addr().Unmap()
		}
		p.mu.Lock()
		if seq < uint64(len(p.sent)) {
			r.Sent = p.sent[seq]
			p.replies = append(p.replies, r)
			close(p.notify)
			p.notify = make(chan struct{})
		}
		p.mu.Unlock()
	}
}

// Result returns what the prober has seen so far.
func (p *Prober) Result() ProbeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return ProbeResult{
		Target:  p.target,
		Every:   p.every,
		Sent:    len(p.sent),
		Replies: append([]ProbeReply(nil), p.replies...),
	}
}

// WaitReply blocks until a reply sent at or after since arrives from node
// (any node when node is ""), or ctx ends.
func (p *Prober) WaitReply(ctx context.Context, node string, since time.Time) (ProbeReply, error) {
	r, err := p.WaitReplyThat(ctx, since, func(r ProbeReply) bool { return node == "" || r.Node == node })
	if err != nil {
		return r, fmt.Errorf("no reply from %q: %w", node, err)
	}
	return r, nil
}

// WaitReplyThat blocks until a reply to a probe sent at or after since arrives
// for which ok holds, or ctx ends: a fault's test waits for the first reply from
// any node but the one it faulted.
func (p *Prober) WaitReplyThat(ctx context.Context, since time.Time, ok func(ProbeReply) bool) (ProbeReply, error) {
	seen := 0
	for {
		p.mu.Lock()
		replies, notify := p.replies, p.notify
		p.mu.Unlock()
		for ; seen < len(replies); seen++ {
			r := replies[seen]
			if ok(r) && !r.Sent.Before(since) {
				return r, nil
			}
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return ProbeReply{}, fmt.Errorf("probes of %s: %w", p.target, ctx.Err())
		}
	}
}

// Stop ends probing and returns the result.
func (p *Prober) Stop() ProbeResult {
	p.stop.Do(func() {
		p.cancel()
		p.wg.Wait()
	})
	return p.Result()
}

// WaitEcho probes ip:port from the client until a reply from node's namespace
// arrives, failing the test when none does within timeout.
func (l *Lab) WaitEcho(ip netip.Addr, port int, node string, timeout time.Duration) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	p := l.Probe(ctx, l.client, netip.AddrPortFrom(ip, uint16(port)), 10*time.Millisecond)
	defer p.Stop()
	if _, err := p.WaitReply(ctx, node, time.Now()); err != nil {
		l.t.Fatalf("UDP echo via %s from %s: %v", ip, node, err)
	}
}
