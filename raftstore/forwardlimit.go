package raftstore

import (
	"sync"
	"time"
)

// Limits on what one peer may forward to the leader. Reports are a few hundred
// bytes and a healthy node sends one every few seconds (plus one per health
// change), joins and read-index requests are rarer still, so these leave an
// order of magnitude of headroom while keeping one authenticated peer from
// making the leader parse megabytes per second.
const (
	// maxForwardRequest bounds one forwarded request. Responses still use
	// maxFrame.
	maxForwardRequest = 64 << 10
	// forwardRate is the sustained forwarded requests per second per peer.
	forwardRate = 10
	// forwardBurst is how many a peer may send at once after being quiet.
	forwardBurst = 20
	// forwardLimiterMax bounds the peers remembered; past it, peers whose
	// buckets have refilled are forgotten (they are indistinguishable from new).
	forwardLimiterMax = 4096
)

// tokenBucket is one peer's allowance: tokens refill at rate per second up to
// burst, each request takes one.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

// take refills b to now and takes a token if there is one.
func (b *tokenBucket) take(now time.Time, rate, burst float64) bool {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(burst, b.tokens+dt*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// full reports whether b has refilled completely by now.
func (b *tokenBucket) full(now time.Time, rate, burst float64) bool {
	return b.tokens+now.Sub(b.last).Seconds()*rate >= burst
}

// peerLimiter rate-limits forwarded requests per peer (the certificate's node
// name, or the source IP on an insecure transport).
type peerLimiter struct {
	rate, burst float64
	max         int
	mu          sync.Mutex
	peers       map[string]*tokenBucket
}

func newPeerLimiter(rate, burst float64, max int) *peerLimiter {
	return &peerLimiter{rate: rate, burst: burst, max: max, peers: map[string]*tokenBucket{}}
}

// allow takes one request's token from peer's bucket at now.
func (l *peerLimiter) allow(peer string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.peers[peer]
	if !ok {
		if len(l.peers) >= l.max {
			l.prune(now)
		}
		b = &tokenBucket{tokens: l.burst, last: now}
		l.peers[peer] = b
	}
	return b.take(now, l.rate, l.burst)
}

// prune forgets peers whose buckets are full again.
func (l *peerLimiter) prune(now time.Time) {
	for p, b := range l.peers {
		if b.full(now, l.rate, l.burst) {
			delete(l.peers, p)
		}
	}
}
