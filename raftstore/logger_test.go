package raftstore

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestRepeatLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := newRepeatLimiter(10 * time.Second)
	l.now = func() time.Time { return now }
	step := func(d time.Duration, key string, wantOK bool, wantSuppressed int) {
		t.Helper()
		now = now.Add(d)
		ok, n := l.allow(key)
		if ok != wantOK || n != wantSuppressed {
			t.Fatalf("allow(%q) at %s = %v,%d; want %v,%d", key, now.Format(time.TimeOnly), ok, n, wantOK, wantSuppressed)
		}
	}
	step(0, "a", true, 0)
	step(time.Second, "a", false, 0)
	step(time.Second, "a", false, 0)
	step(0, "b", true, 0) // other keys are independent
	step(8*time.Second, "a", true, 2)
	step(time.Second, "a", false, 0)
	step(10*time.Second, "a", true, 1)
	step(10*time.Second, "a", true, 0)
}

func newCapture(level slog.Level) (*bytes.Buffer, *slog.Logger) {
	var buf bytes.Buffer
	return &buf, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))
}

func TestHCLogAdapterLevels(t *testing.T) {
	buf, l := newCapture(slog.LevelDebug)
	a := newHCLogAdapter(l, "raft")
	a.Info("entering follower state")
	a.Debug("noise")
	a.Trace("more noise")
	if buf.Len() != 0 {
		t.Fatalf("below Warn got through: %s", buf)
	}
	if a.IsInfo() || !a.IsWarn() || !a.IsError() {
		t.Fatal("Is* disagree with the Warn floor")
	}
	a.Warn("heartbeat timeout reached", "last-leader-id", "n1")
	a.Error("failed to heartbeat to", "peer", "10.0.0.1:7950", "error", "EOF")
	out := buf.String()
	for _, want := range []string{"level=WARN", `msg="heartbeat timeout reached"`, "last-leader-id=n1", "level=ERROR", "peer=10.0.0.1:7950", "module=raft"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}

	buf.Reset()
	a.SetLevel(hclog.Info)
	a.Info("now visible")
	if !strings.Contains(buf.String(), "now visible") || a.GetLevel() != hclog.Info {
		t.Fatalf("SetLevel(Info) had no effect: %s", buf)
	}
	a.SetLevel(hclog.Off)
	a.Error("silenced")
	if strings.Contains(buf.String(), "silenced") {
		t.Fatal("Off did not silence")
	}
}

func TestHCLogAdapterRespectsSlogLevel(t *testing.T) {
	buf, l := newCapture(slog.LevelError)
	a := newHCLogAdapter(l, "raft")
	a.Warn("dropped by the handler")
	if buf.Len() != 0 || a.IsWarn() {
		t.Fatalf("handler at Error let a warning through: %s", buf)
	}
}

func TestHCLogAdapterSuppressesRepeatsPerPeer(t *testing.T) {
	buf, l := newCapture(slog.LevelDebug)
	a := newHCLogAdapter(l, "raft")
	for range 5 {
		a.Error("failed to heartbeat to", "peer", "10.0.0.1:7950", "backoff time", time.Millisecond)
		a.Error("failed to heartbeat to", "peer", "10.0.0.2:7950", "backoff time", time.Millisecond)
	}
	out := buf.String()
	if n := strings.Count(out, "failed to heartbeat to"); n != 2 {
		t.Fatalf("%d lines, want one per peer:\n%s", n, out)
	}
	if !strings.Contains(out, "10.0.0.1") || !strings.Contains(out, "10.0.0.2") {
		t.Fatalf("a peer's failure was hidden by another's:\n%s", out)
	}
}

func TestHCLogAdapterDerivedLoggers(t *testing.T) {
	buf, l := newCapture(slog.LevelDebug)
	a := newHCLogAdapter(l, "raft")
	d := a.Named("transport").With("local", "n1")
	d.Warn("accept failed")
	out := buf.String()
	if !strings.Contains(out, "module=raft.transport") || !strings.Contains(out, "local=n1") {
		t.Fatalf("Named/With lost: %s", out)
	}
	if got := d.ImpliedArgs(); len(got) != 2 || d.Name() != "raft.transport" {
		t.Fatalf("implied %v name %q", got, d.Name())
	}
	if r := d.ResetNamed("snapshot"); r.Name() != "snapshot" {
		t.Fatalf("ResetNamed = %q", r.Name())
	}
	// The level is shared with derived loggers, as in hclog.
	d.SetLevel(hclog.Error)
	if a.IsWarn() {
		t.Fatal("SetLevel on a derived logger did not reach its parent")
	}
	buf.Reset()
	a.StandardLogger(nil).Print("from the standard library")
	if !strings.Contains(buf.String(), "from the standard library") {
		t.Fatalf("StandardLogger lost output: %s", buf)
	}
	if a.StandardWriter(nil) == nil {
		t.Fatal("nil StandardWriter")
	}
}
