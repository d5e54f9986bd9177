package raftstore

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLastHeardIsMonotonic proves peer liveness is measured on the monotonic
// clock: the stamp lastHeard hands out carries a monotonic reading, so a wall
// clock step between stamping and comparing cannot change how long ago a peer
// answered.
func TestLastHeardIsMonotonic(t *testing.T) {
	m := &muxLayer{epoch: time.Now()}
	if _, ok := m.lastHeard("peer"); ok {
		t.Fatal("unknown peer reported as heard")
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	v, _ := m.heard.LoadOrStore("peer", new(atomic.Int64))
	if _, ok := m.lastHeard("peer"); ok {
		t.Fatal("peer never read from reported as heard")
	}
	hc := &heardConn{Conn: a, heard: v.(*atomic.Int64), epoch: m.epoch}
	before := time.Now()
	go func() { _, _ = b.Write([]byte{1}) }()
	if _, err := hc.Read(make([]byte, 1)); err != nil {
		t.Fatalf("read: %v", err)
	}
	at, ok := m.lastHeard("peer")
	if !ok {
		t.Fatal("peer that answered not reported as heard")
	}
	if !strings.Contains(at.String(), "m=") {
		t.Fatalf("last-heard stamp %s has no monotonic reading", at)
	}
	if at.Before(before) || at.After(time.Now()) {
		t.Fatalf("last-heard stamp %s outside the read window", at)
	}
}
