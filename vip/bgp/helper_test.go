// Go 1.24+ listeners default to Multipath TCP, and an MPTCP socket refuses
// TCP_MD5SIG and IP_TTL: gobgp's listener then cannot check peers' TCP MD5
// signatures. The test router listens, so the test binary turns it off, as
// the raftvip binary must.

//go:debug multipathtcp=0

package bgp

// Lab tests run every BGP speaker, like the router, in a helper process of
// its own, started inside its namespace with `ip netns exec`, and drive it
// over net/rpc on a Unix socket: gobgp opens its sockets from goroutines it
// starts itself and keeps route-selection options in package globals (the
// bgprouter package says why that rules out namespace switches and several
// speakers per process). A helper serves a SpeakerService besides
// bgprouter's router service.

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/raftvip/raftvip/test/bgprouter"
)

// TestMain runs the helper when the binary was started as one, else the tests.
func TestMain(m *testing.M) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	bgprouter.HelperMain(slogAdapter{l: log}, map[string]any{"Speaker": &SpeakerService{log: log}})
	os.Exit(m.Run())
}

// SpeakerService is the RPC service of a helper process that runs one
// Speaker.
type SpeakerService struct {
	log *slog.Logger
	mu  sync.Mutex
	sp  *Speaker
}

// SpeakerArgs is Config without the logger, which cannot cross processes.
type SpeakerArgs struct {
	AS                 uint32
	RouterID           netip.Addr
	ListenPort         int32
	SourceAddress      netip.Addr
	NextHop4, NextHop6 netip.Addr
	Peers              []Peer
}

// Timing brackets a call made inside the helper, in wall-clock time, so the
// test can compare it with the router's arrival times.
type Timing struct {
	Start, End time.Time
}

// Start creates the helper's Speaker.
func (h *SpeakerService) Start(a SpeakerArgs, _ *struct{}) error {
	sp, err := New(Config{AS: a.AS, RouterID: a.RouterID, ListenPort: a.ListenPort, SourceAddress: a.SourceAddress,
		NextHop4: a.NextHop4, NextHop6: a.NextHop6, Peers: a.Peers, Logger: h.log})
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.sp = sp
	h.mu.Unlock()
	return nil
}

// speaker returns the Speaker or an error when none was started.
func (h *SpeakerService) speaker() (*Speaker, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sp == nil {
		return nil, errors.New("no speaker started")
	}
	return h.sp, nil
}

// Set calls Speaker.Set.
func (h *SpeakerService) Set(want map[netip.Addr]PathAttrs, reply *Timing) error {
	return h.timed(reply, func(s *Speaker) error { return s.Set(context.Background(), want) })
}

// WithdrawAll calls Speaker.WithdrawAll.
func (h *SpeakerService) WithdrawAll(_ struct{}, reply *Timing) error {
	return h.timed(reply, func(s *Speaker) error { return s.WithdrawAll(context.Background()) })
}

// Close calls Speaker.Close.
func (h *SpeakerService) Close(_ struct{}, reply *Timing) error {
	return h.timed(reply, func(s *Speaker) error { return s.Close(context.Background()) })
}

// timed runs fn on the Speaker and records when it ran.
func (h *SpeakerService) timed(reply *Timing, fn func(*Speaker) error) error {
	s, err := h.speaker()
	if err != nil {
		return err
	}
	reply.Start = time.Now()
	err = fn(s)
	reply.End = time.Now()
	return err
}

// Sessions calls Speaker.Sessions.
func (h *SpeakerService) Sessions(_ struct{}, reply *[]Session) error {
	s, err := h.speaker()
	if err != nil {
		return err
	}
	*reply, err = s.Sessions(context.Background())
	return err
}
