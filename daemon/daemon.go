// Package daemon wires the agent together: it validates the configuration, starts the
// Raft node, the status server and the reconcile loops, and stops them in order.
// Decisions live in pure sub-packages (ipam, assign); I/O lives in raftstore and vip.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/vip"
	"github.com/raftvip/raftvip/vip/bgp"
)

// shutdownBudget bounds how long a stopping agent spends handing over before it exits.
const shutdownBudget = 3 * time.Second

// Daemon is one running agent.
type Daemon struct {
	cfg  *Parsed
	log  *slog.Logger
	node *raftstore.Node
	// holder is the --interface's Holder (the control-plane VIPs and pools
	// without an interface), nil without one; holders has it and one for each
	// further interface the --pool flags name, by interface (L2 mode).
	holder  *vip.Holder
	holders map[string]*vip.Holder
	// lease is the verified leader lease the announce loop speaks within.
	lease *leaderLease
	// health is when the announce and leader loops last passed, for /healthz.
	health *loopHealth
	reg    *prometheus.Registry
	m      *metrics
	// services is the leader's Kubernetes view; nil without --kubeconfig.
	services serviceSource
	// bgp is the BGP speaker and the VIPs held on lo (bgp mode only).
	bgp *bgpAdvertiser
	// certs renews the Raft peer certificate; nil on an insecure transport.
	certs *raftstore.CertSource
	// fatal carries the error of a loop that cannot go on (fail); Run stops on it.
	fatal chan error
	// poolsGatedLogged is set, by the leader loop only, once it logged that its
	// pools wait for the feature gate (syncPools).
	poolsGatedLogged bool

	mu        sync.Mutex
	apiHealth *bool // nil until the first check
	draining  bool  // set on SIGTERM: the leader moves this node's VIPs away
	// classDrift is why this node's --lb-class is not what is served ("" when it
	// is), kept by the leader loop for /raft/status.
	classDrift string
}

// Run starts the agent and blocks until ctx is cancelled (SIGTERM/SIGINT), then stops
// cleanly: a leader hands leadership over first so the group never waits for an
// election timeout.
func Run(ctx context.Context, cfg *Parsed, log *slog.Logger) error {
	if err := cfg.CheckEnvironment(vip.CheckVIP); err != nil {
		return err
	}
	if cfg.Nice != 0 {
		if err := raisePriority(cfg.Nice); err != nil {
			log.Warn("could not raise scheduling priority (needs CAP_SYS_NICE): under CPU pressure late heartbeats can cause needless failovers",
				"nice", cfg.Nice, "err", err)
		}
	}
	tlsConf, certs, err := cfg.transportTLS(ctx, log)
	if err != nil {
		return err
	}
	if tlsConf == nil {
		log.Warn("raft transport is NOT authenticated (--insecure-transport): anyone who can reach the raft port can join, vote and rewrite VIP ownership; use only in labs")
	}
	// Bound before Raft starts: an address that cannot be bound stops the agent
	// before it touches the interface or joins the cluster, with one line naming the flag.
	statusLn, err := listenStatus(cfg.StatusAddress, log)
	if err != nil {
		return err
	}
	defer statusLn.Close()

	d := &Daemon{cfg: cfg, log: log, reg: prometheus.NewRegistry(), certs: certs, fatal: make(chan error, 1)}
	d.m = newMetrics()
	announceEvery := announceCheckInterval(cfg)
	if cfg.Mode == ModeBGP {
		announceEvery = max(cfg.FenceTimeout/6, 10*time.Millisecond)
	}
	d.health = newLoopHealth(time.Now(), map[string]time.Duration{
		"announce": announceEvery,
		"leader":   max(cfg.NodeDownTimeout/6, 10*time.Millisecond),
	})
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.reg.MustRegister(d.m.collectors()...)
	d.reg.MustRegister(vip.Collectors()...)
	if certs != nil {
		d.reg.MustRegister(certs.Collectors()...)
	}

	if cfg.Mode == ModeBGP {
		// VIPs go on lo, never on the segment interface, and are advertised to routers.
		b, err := newBGPAdvertiser(cfg, log)
		if err != nil {
			return err
		}
		d.bgp = b
		defer b.close()
		if err := removeStaleFences(nil, log); err != nil {
			log.Warn("bgp mode: could not check for kernel fence tables of an earlier L2 run", "err", err)
		}
		d.reg.MustRegister(bgp.Collectors()...)
		d.reg.MustRegister(b.changes)
	} else {
		hs, err := openHolders(cfg, log)
		if err != nil {
			return err
		}
		d.holders, d.holder = hs, hs[cfg.Interface]
		defer func() {
			for _, h := range hs {
				_ = h.Close()
			}
		}()
	}

	node, err := raftstore.Open(raftstore.Config{
		NodeID:        cfg.NodeName,
		BindAddr:      net.JoinHostPort(bindHost(cfg.Advertise), fmt.Sprint(cfg.RaftPort)),
		AdvertiseAddr: cfg.RaftAddr,
		DataDir:       cfg.DataDir,
		Peers:         cfg.Peers,
		Probe:         bootstrapProbe(cfg),
		ControlPlane:  cfg.ControlPlane && len(cfg.Join) > 0 && !cfg.Bootstrap,
		MaxNonvoters:  cfg.MaxNonvoters,
		ClusterCheck:  clusterCheck(cfg),
		TLS:           tlsConf,
		Timeouts:      cfg.Raft,
		Logger:        log,
	})
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	d.node = node
	d.reg.MustRegister(node.Collectors()...)
	log.Info("raft started", "address", cfg.RaftAddr, "voter", cfg.IsVoter, "peers", len(cfg.Peers),
		"heartbeat", cfg.Raft.Heartbeat, "election", cfg.Raft.Election, "leader_lease", cfg.Raft.LeaderLease)

	srv := &http.Server{Handler: newStatusHandler(d, d.reg, log), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(statusLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("status server stopped", "err", err)
		}
	}()
	log.Info("status server listening", "address", statusLn.Addr().String())
	stopAdmin, err := d.startAdmin()
	if err != nil {
		_ = srv.Close()
		_ = node.Shutdown(shutdownBudget)
		return fmt.Errorf("start the admin socket: %w", err)
	}
	defer stopAdmin()

	loops, cancelLoops := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	start := func(name string, f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(loops)
			log.Debug("loop stopped", "loop", name)
		}()
	}
	if certs != nil {
		start("cert-renewal", certs.Run)
	}
	// In bgp mode the advertise loop stops first on shutdown, so routers move traffic
	// away before anything else stops.
	stopBGP := func() {}
	if d.bgp != nil {
		bgpLoops, cancelBGP := context.WithCancel(context.Background())
		bgpDone := make(chan struct{})
		go func() {
			defer close(bgpDone)
			d.bgpLoop(bgpLoops)
		}()
		stopBGP = func() {
			cancelBGP()
			<-bgpDone
		}
	} else {
		d.lease = newLeaderLease()
		if len(d.holders) > 0 {
			start("leader-lease", func(ctx context.Context) {
				d.lease.run(ctx, d.node, announceCheckInterval(d.cfg))
			})
			start("interface", d.interfaceLoop)
		}
		start("announce", d.announceLoop)
	}
	if cfg.IsVoter && cfg.APIServerHealthURL != "" {
		start("apiserver-health", d.healthLoop)
	} else if cfg.IsVoter {
		start("report", d.reportOnce)
	}
	if cfg.IsVoter && cfg.Kubeconfig != "" {
		// Every voter keeps warm informers; only the leader acts. Run never blocks on
		// the API server, so the control-plane VIP comes first.
		svc, err := newServiceController(node, cfg.Kubeconfig, cfg.LBClass, log, d.reg)
		if err != nil {
			log.Error("service controller disabled", "kubeconfig", cfg.Kubeconfig, "err", err)
		} else {
			d.services = svc
			start("services", svc.Run)
		}
		if cfg.Mode == ModeL2 {
			d.startL2Status(start)
		}
		if cfg.TLSCAKey != "" {
			start("csr-signer", d.csrSignerLoop)
		} else if !cfg.InsecureTransport {
			log.Info("this voter signs no worker certificates (--tls-csr workers) without --tls-ca-key")
		}
	}
	start("report-refresh", d.reportRefreshLoop)
	if cfg.IsVoter {
		start("leader", d.leaderLoop)
	}
	if len(cfg.Join) > 0 && !cfg.Bootstrap {
		start("join", d.joinLoop)
	}

	var failed error
	select {
	case <-ctx.Done():
		log.Info("stopping: signal received")
	case failed = <-d.fatal:
		log.Error("stopping: this agent cannot go on", "err", failed)
	}
	stopStart := time.Now()
	stopBGP()
	d.drain(drainBudget)
	// Hand leadership over while the loops still run, in two phases: the leader
	// first takes the control-plane VIPs off, then transfers; the new leader adds them.
	if node.IsLeader() {
		d.releaseControlPlane()
	}
	if err := node.Shutdown(shutdownBudget); err != nil {
		log.Warn("raft shutdown", "err", err)
	}
	cancelLoops()
	wg.Wait()
	if err := d.removeAllHolders(); err != nil {
		log.Warn("remove VIPs and the kernel fence on shutdown", "err", err)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	log.Info("stopped", "took", time.Since(stopStart).Round(time.Millisecond))
	return failed
}

// fail stops the agent with err, the way a signal would but with the error as
// Run's result: for a loop that found the agent cannot go on. The first error
// wins.
func (d *Daemon) fail(err error) {
	select {
	case d.fatal <- err:
	default:
	}
}

// bootstrapProbe is where a --bootstrap node looks for an existing cluster before
// forming its own: the --join addresses given with it.
func bootstrapProbe(cfg *Parsed) []string {
	if !cfg.Bootstrap {
		return nil
	}
	return cfg.Join
}

// clusterCheck is where a node with a data dir of its own checks, at start, that
// the cluster answering there is the one its data dir belongs to: every --join
// address and every other --peer voter.
func clusterCheck(cfg *Parsed) []string {
	out := append([]string(nil), cfg.Join...)
	for _, p := range cfg.Peers {
		if p.ID != cfg.NodeName {
			out = append(out, p.Address)
		}
	}
	return out
}

// bindHost listens on the advertise address's family wildcard, so a node whose
// address moves between interfaces keeps working and loopback tests stay simple.
func bindHost(adv netip.Addr) string {
	if adv.IsLoopback() {
		return adv.String()
	}
	if adv.Is4() {
		return "0.0.0.0"
	}
	return "::"
}

// RaftStatus implements statusSource.
func (d *Daemon) RaftStatus() RaftStatus {
	st := RaftStatus{Status: d.node.Status(), Voter: d.cfg.IsVoter, HeldVIPs: []string{}}
	for _, v := range d.cfg.VIPs {
		st.ControlPlaneVIPs = append(st.ControlPlaneVIPs, v.String())
	}
	for _, v := range d.heldVIPs() {
		st.HeldVIPs = append(st.HeldVIPs, v.String())
	}
	if d.bgp != nil {
		for _, v := range d.bgp.heldVIPs() {
			st.HeldVIPs = append(st.HeldVIPs, v.String())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st.BGPSessions = d.bgp.sessions(ctx)
		cancel()
	}
	if d.certs != nil {
		cs := d.certs.Status()
		st.Certificate = &cs
	}
	d.mu.Lock()
	st.APIServerHealthy = d.apiHealth
	if d.classDrift != "" {
		st.LBClassMismatch = true
		st.Warnings = append(st.Warnings, d.classDrift)
	}
	d.mu.Unlock()
	st.LBClass = d.node.State().LBClass
	if drift := poolDrift(d.cfg.Pools, d.node.State().Pools); drift != "" {
		st.PoolFlagsMismatch = true
		st.Warnings = append(st.Warnings, drift)
	}
	st.Warnings = append(st.Warnings, raftstore.MemberWarnings(st.Servers, max(memberSilentWarning, d.cfg.NodeDownTimeout))...)
	return st
}

// memberSilentWarning is how long a member may go unheard before /raft/status warns:
// longer than a restart or an upgrade of one node takes, short enough that a dead
// member is noticed while the others still keep quorum.
const memberSilentWarning = 30 * time.Second

// State implements statusSource.
func (d *Daemon) State() raftstore.State { return d.node.State() }

// StuckLoops implements statusSource: the loops /healthz reports as stuck.
func (d *Daemon) StuckLoops() []string { return d.health.stuck(time.Now()) }

func sortedAddrs(a []netip.Addr) []netip.Addr {
	out := append([]netip.Addr(nil), a...)
	slices.SortFunc(out, func(x, y netip.Addr) int { return x.Compare(y) })
	return out
}
