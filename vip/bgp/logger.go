package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// slogAdapter feeds gobgp's log lines into the daemon's slog logger, so BGP
// messages come out in the same format and at the same level filter as the
// rest of raftvip. gobgp asks for the level before formatting debug lines;
// the answer follows the slog handler's enabled levels.
type slogAdapter struct {
	l *slog.Logger
}

var _ gobgplog.Logger = slogAdapter{}

// attrs turns gobgp's fields into slog attributes in a stable order.
func attrs(fields gobgplog.Fields) []any {
	out := make([]any, 0, 2*len(fields))
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if k == gobgplog.FieldFacility {
			continue
		}
		out = append(out, k, fields[k])
	}
	return out
}

// Panic logs and panics: gobgp calls it only on internal logic bugs and does
// not expect it to return.
func (a slogAdapter) Panic(msg string, fields gobgplog.Fields) {
	a.l.Error(msg, attrs(fields)...)
	panic(fmt.Sprintf("gobgp: %s %v", msg, fields))
}

// Fatal logs and panics, for the same reason as Panic; a panic leaves the
// daemon's supervisor to restart it instead of exiting from library code.
func (a slogAdapter) Fatal(msg string, fields gobgplog.Fields) {
	a.l.Error(msg, attrs(fields)...)
	panic(fmt.Sprintf("gobgp: %s %v", msg, fields))
}

// Error logs at error level.
func (a slogAdapter) Error(msg string, fields gobgplog.Fields) { a.l.Error(msg, attrs(fields)...) }

// Warn logs at warning level.
func (a slogAdapter) Warn(msg string, fields gobgplog.Fields) { a.l.Warn(msg, attrs(fields)...) }

// Info logs gobgp's informational lines (session changes, peer config) at
// debug level: the Speaker logs the session changes that matter itself.
func (a slogAdapter) Info(msg string, fields gobgplog.Fields) { a.l.Debug(msg, attrs(fields)...) }

// Debug logs at debug level.
func (a slogAdapter) Debug(msg string, fields gobgplog.Fields) { a.l.Debug(msg, attrs(fields)...) }

// SetLevel is ignored: the slog handler owns the level.
func (a slogAdapter) SetLevel(gobgplog.LogLevel) {}

// GetLevel reports the most verbose level the handler lets through, so gobgp
// skips building debug lines nobody will see.
func (a slogAdapter) GetLevel() gobgplog.LogLevel {
	if a.l.Enabled(context.Background(), slog.LevelDebug) {
		return gobgplog.DebugLevel
	}
	return gobgplog.WarnLevel
}
