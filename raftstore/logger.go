package raftstore

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// repeatWindow is how long an identical raft message is suppressed after it
// was logged. hashicorp/raft logs every failed heartbeat (up to 20 a second
// per unreachable peer with our timeouts); one line per window with a count
// says the same without flooding the journal.
const repeatWindow = 10 * time.Second

// repeatLimiter lets the first occurrence of a key through and then at most
// one per window, reporting how many it swallowed in between.
type repeatLimiter struct {
	mu     sync.Mutex
	window time.Duration
	now    func() time.Time
	seen   map[string]*repeatEntry
}

type repeatEntry struct {
	last       time.Time
	suppressed int
}

func newRepeatLimiter(window time.Duration) *repeatLimiter {
	return &repeatLimiter{window: window, now: time.Now, seen: map[string]*repeatEntry{}}
}

// allow reports whether key may be logged now and how many occurrences were
// suppressed since it was last allowed.
func (r *repeatLimiter) allow(key string) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	e, ok := r.seen[key]
	if !ok {
		if len(r.seen) > 1024 {
			r.seen = map[string]*repeatEntry{}
		}
		r.seen[key] = &repeatEntry{last: now}
		return true, 0
	}
	if now.Sub(e.last) < r.window {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return true, n
}

// hclogAdapter sends hashicorp/raft's hclog output to slog. Raft is chatty
// at Info (every state change, every snapshot); the node logs the events
// that matter itself, so the adapter starts at Warn.
type hclogAdapter struct {
	logger  *slog.Logger
	name    string
	implied []any
	level   *levelBox
	limiter *repeatLimiter
}

// levelBox is shared by an adapter and everything derived from it, so
// SetLevel on any of them applies to all, as in hclog.
type levelBox struct {
	mu    sync.Mutex
	level hclog.Level
}

func (b *levelBox) get() hclog.Level {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.level
}

func (b *levelBox) set(l hclog.Level) {
	b.mu.Lock()
	b.level = l
	b.mu.Unlock()
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func newHCLogAdapter(l *slog.Logger, name string) *hclogAdapter {
	return &hclogAdapter{
		logger:  l,
		name:    name,
		level:   &levelBox{level: hclog.Warn},
		limiter: newRepeatLimiter(repeatWindow),
	}
}

func slogLevel(l hclog.Level) slog.Level {
	switch {
	case l <= hclog.Debug:
		return slog.LevelDebug
	case l == hclog.Info:
		return slog.LevelInfo
	case l == hclog.Warn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (a *hclogAdapter) enabled(l hclog.Level) bool {
	floor := a.level.get()
	return floor != hclog.Off && l >= floor && a.logger.Enabled(context.Background(), slogLevel(l))
}

// Log implements hclog.Logger.
func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || !a.enabled(level) {
		return
	}
	ok, suppressed := a.limiter.allow(repeatKey(a.name, msg, args))
	if !ok {
		return
	}
	attrs := make([]any, 0, len(a.implied)+len(args)+4)
	if a.name != "" {
		attrs = append(attrs, "module", a.name)
	}
	attrs = append(attrs, a.implied...)
	attrs = append(attrs, args...)
	if suppressed > 0 {
		attrs = append(attrs, "repeats_suppressed", suppressed)
	}
	a.logger.Log(context.Background(), slogLevel(level), msg, attrs...)
}

// identityArgs are the raft log arguments that say which peer a message is
// about; repeats are counted per peer, so one dead peer does not hide
// another.
var identityArgs = map[string]bool{"peer": true, "peer-id": true, "server-id": true, "id": true, "address": true, "target": true}

func repeatKey(name, msg string, args []any) string {
	key := name + "\x00" + msg
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && identityArgs[k] {
			key += "\x00" + k + "=" + fmt.Sprint(args[i+1])
		}
	}
	return key
}

// Trace implements hclog.Logger.
func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }

// Debug implements hclog.Logger.
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }

// Info implements hclog.Logger.
func (a *hclogAdapter) Info(msg string, args ...any) { a.Log(hclog.Info, msg, args...) }

// Warn implements hclog.Logger.
func (a *hclogAdapter) Warn(msg string, args ...any) { a.Log(hclog.Warn, msg, args...) }

// Error implements hclog.Logger.
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

// IsTrace implements hclog.Logger.
func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }

// IsDebug implements hclog.Logger.
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }

// IsInfo implements hclog.Logger.
func (a *hclogAdapter) IsInfo() bool { return a.enabled(hclog.Info) }

// IsWarn implements hclog.Logger.
func (a *hclogAdapter) IsWarn() bool { return a.enabled(hclog.Warn) }

// IsError implements hclog.Logger.
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

// ImpliedArgs implements hclog.Logger.
func (a *hclogAdapter) ImpliedArgs() []any { return append([]any(nil), a.implied...) }

// With implements hclog.Logger.
func (a *hclogAdapter) With(args ...any) hclog.Logger {
	c := *a
	c.implied = append(append([]any(nil), a.implied...), args...)
	return &c
}

// Name implements hclog.Logger.
func (a *hclogAdapter) Name() string { return a.name }

// Named implements hclog.Logger.
func (a *hclogAdapter) Named(name string) hclog.Logger {
	c := *a
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

// ResetNamed implements hclog.Logger.
func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	return &c
}

// SetLevel implements hclog.Logger.
func (a *hclogAdapter) SetLevel(level hclog.Level) { a.level.set(level) }

// GetLevel implements hclog.Logger.
func (a *hclogAdapter) GetLevel() hclog.Level { return a.level.get() }

// StandardLogger implements hclog.Logger.
func (a *hclogAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(a.logger.With("module", a.name).Handler(), slog.LevelWarn)
}

// StandardWriter implements hclog.Logger.
func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	return a.StandardLogger(opts).Writer()
}
