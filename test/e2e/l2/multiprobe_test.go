package l2_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/raftvip/raftvip/test/lab"
)

// multiProber probes many UDP echo targets (lab.StartEcho servers, which answer with
// the probe's 8 bytes and their namespace name) from one socket in the client
// namespace: every round sends one probe to each target. A Prober per target would
// mean a goroutine pair and a socket for each of a thousand VIPs.
type multiProber struct {
	conn    net.PacketConn
	targets []netip.AddrPort
	every   time.Duration
	cancel  context.CancelFunc
	sent    chan struct{} // closed when the sender has returned
	recv    chan struct{} // closed when the receiver has returned
	stop    sync.Once

	mu     sync.Mutex
	hits   [][]hit // per target, in order of arrival
	rounds int
}

// hit is one reply: when it arrived and which node's namespace sent it.
type hit struct {
	at time.Time
	ns string
}

// probeSeq packs a round and a target index into the 8-byte probe.
func probeSeq(round uint64, target int) uint64 { return round<<20 | uint64(target) }

func unpackSeq(seq uint64) (round uint64, target int) { return seq >> 20, int(seq & (1<<20 - 1)) }

// startMultiProber starts probing from ns: one round every `every` until stopped or
// the lab is cleaned up.
func startMultiProber(l *lab.Lab, ns string, targets []netip.AddrPort, every time.Duration) (*multiProber, error) {
	if len(targets) == 0 || len(targets) >= 1<<20 {
		return nil, errors.New("multiProber: want 1 to 2^20-1 targets")
	}
	nw := "udp4"
	if targets[0].Addr().Is6() {
		nw = "udp6"
	}
	var conn net.PacketConn
	err := l.RunInNS(ns, func() error {
		var err error
		conn, err = net.ListenPacket(nw, ":0")
		return err
	})
	if err != nil {
		return nil, err
	}
	if uc, ok := conn.(*net.UDPConn); ok {
		// A round's replies arrive in a burst.
		_ = uc.SetReadBuffer(8 << 20)
		_ = uc.SetWriteBuffer(8 << 20)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &multiProber{conn: conn, targets: targets, every: every, cancel: cancel, hits: make([][]hit, len(targets)),
		sent: make(chan struct{}), recv: make(chan struct{})}
	go p.receive()
	go p.send(ctx)
	return p, nil
}

func (p *multiProber) send(ctx context.Context) {
	defer close(p.sent)
	t := time.NewTicker(p.every)
	defer t.Stop()
	buf := make([]byte, 8)
	addrs := make([]*net.UDPAddr, len(p.targets))
	for i, a := range p.targets {
		addrs[i] = net.UDPAddrFromAddrPort(a)
	}
	for round := uint64(0); ; round++ {
		for i, a := range addrs {
			binary.BigEndian.PutUint64(buf, probeSeq(round, i))
			// An unresolved neighbour or a full queue is a lost probe, which the
			// hits show as a gap.
			_, _ = p.conn.WriteTo(buf, a)
		}
		p.mu.Lock()
		p.rounds++
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *multiProber) receive() {
	defer close(p.recv)
	buf := make([]byte, 1500)
	for {
		n, _, err := p.conn.ReadFrom(buf)
		now := time.Now()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || n < 8 {
			continue
		}
		_, i := unpackSeq(binary.BigEndian.Uint64(buf[:8]))
		if i >= len(p.targets) {
			continue
		}
		p.mu.Lock()
		p.hits[i] = append(p.hits[i], hit{at: now, ns: string(buf[8:n])})
		p.mu.Unlock()
	}
}

// Stop ends probing; the hits stay readable.
func (p *multiProber) Stop() {
	p.stop.Do(func() {
		p.cancel()
		<-p.sent
		// The receiver returns once the socket is closed.
		_ = p.conn.Close()
		<-p.recv
	})
}

// snapshot copies the hits so far.
func (p *multiProber) snapshot() [][]hit {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([][]hit, len(p.hits))
	for i, h := range p.hits {
		out[i] = append([]hit(nil), h...)
	}
	return out
}

// waitAll waits until every target has a reply that satisfies ok, or ctx ends; it
// returns how many targets still have none.
func (p *multiProber) waitAll(ctx context.Context, ok func(hit) bool) int {
	for {
		missing := 0
		for _, hs := range p.snapshot() {
			found := false
			for _, h := range hs {
				if ok(h) {
					found = true
					break
				}
			}
			if !found {
				missing++
			}
		}
		if missing == 0 || ctx.Err() != nil {
			return missing
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// firstOther is, for each target, when the first reply arrived at or after since
// from a namespace other than old; zero when none did.
func firstOther(hits [][]hit, old string, since time.Time) []time.Time {
	out := make([]time.Time, len(hits))
	for i, hs := range hits {
		for _, h := range hs {
			if h.ns != old && !h.at.Before(since) {
				out[i] = h.at
				break
			}
		}
	}
	return out
}

// maxGaps is, for each target, the longest time without a reply inside [from, to]:
// between consecutive replies, and from `from` to the first and the last to `to`.
func maxGaps(hits [][]hit, from, to time.Time) []time.Duration {
	out := make([]time.Duration, len(hits))
	for i, hs := range hits {
		prev := from
		for _, h := range hs {
			if h.at.Before(from) {
				continue
			}
			if h.at.After(to) {
				break
			}
			out[i] = max(out[i], h.at.Sub(prev))
			prev = h.at
		}
		out[i] = max(out[i], to.Sub(prev))
	}
	return out
}
