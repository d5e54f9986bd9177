package bgprouter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"os"
	"sync"
	"time"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// helperArg is the first argument that turns a test binary into a helper
// process (StartProcess passes it, HelperMain looks for it).
const helperArg = "raftvip-bgp-helper"

// serviceName is the RPC name of the Service every helper serves.
const serviceName = "Router"

// HelperMain makes the test binary a helper process when StartProcess
// started it: it serves one client on the Unix socket named in its
// arguments, with a Service under the name "Router" (its routers log through
// log; nil: gobgp's default logger) and each of services under its name, and
// exits when that client disconnects. In any other process it returns at
// once. A test package calls it first thing in TestMain.
func HelperMain(log gobgplog.Logger, services map[string]any) {
	if len(os.Args) != 3 || os.Args[1] != helperArg {
		return
	}
	if err := serveOne(os.Args[2], log, services); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveOne serves one RPC client on a Unix socket at path and returns when
// that client disconnects.
func serveOne(path string, log gobgplog.Logger, services map[string]any) error {
	srv := rpc.NewServer()
	if err := srv.RegisterName(serviceName, &Service{log: log}); err != nil {
		return fmt.Errorf("register %s: %w", serviceName, err)
	}
	for name, svc := range services {
		if err := srv.RegisterName(name, svc); err != nil {
			return fmt.Errorf("register %s: %w", name, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	defer ln.Close()
	conn, err := ln.Accept()
	if err != nil {
		return err
	}
	srv.ServeConn(conn)
	return nil
}

// Service is the RPC service of a helper process that runs one Router; its
// methods follow net/rpc's rules, for Remote to call.
type Service struct {
	log gobgplog.Logger
	mu  sync.Mutex
	rt  *Router
}

// AwaitArgs asks the router to wait until its RIB matches Want, with an
// event after Since (zero: any time), for at most Timeout.
type AwaitArgs struct {
	Want    View
	Since   time.Time
	Timeout time.Duration
}

// Start starts the helper's router.
func (s *Service) Start(cfg Config, _ *struct{}) error {
	rt, err := Start(cfg, s.log)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.rt = rt
	s.mu.Unlock()
	return nil
}

// router returns the router or an error when none was started.
func (s *Service) router() (*Router, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rt == nil {
		return nil, errors.New("no router started")
	}
	return s.rt, nil
}

// Paths lists the router's RIB.
func (s *Service) Paths(_ struct{}, reply *[]Path) error {
	r, err := s.router()
	if err != nil {
		return err
	}
	*reply, err = r.Paths(context.Background())
	return err
}

// Peers lists the router's neighbors.
func (s *Service) Peers(_ struct{}, reply *[]PeerView) error {
	r, err := s.router()
	if err != nil {
		return err
	}
	*reply, err = r.Peers(context.Background())
	return err
}

// Await waits on the router's RIB and returns the arrival time of what made
// it match.
func (s *Service) Await(a AwaitArgs, reply *time.Time) error {
	r, err := s.router()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.Timeout)
	defer cancel()
	*reply, err = r.Await(ctx, a.Want, a.Since)
	return err
}
