package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/raftvip/raftvip/daemon/ipam"
	"github.com/raftvip/raftvip/raftstore"
)

// Config is everything the agent needs, already parsed from flags. main.go fills it;
// Validate checks it before the agent touches the network, the data dir or Raft.
type Config struct {
	NodeName         string
	Interface        string
	AdvertiseAddress string
	RaftPort         int
	StatusAddress    string
	Peers            []string // NAME=HOST:PORT, the voter set including this node
	Join             []string // HOST:PORT of members (or the control-plane VIP) to join through, tried in turn
	// Bootstrap forms a one-voter cluster when the data dir has no state: the first
	// control-plane node of a kubeadm cluster, before any API server exists.
	Bootstrap bool
	// ControlPlane makes a --join node a voter-to-be: it joins as a nonvoter and the
	// leader promotes it once it has caught up. Without it --join means a worker.
	ControlPlane bool
	// AdminSocket is the root-only unix socket for members/snapshot commands.
	AdminSocket      string
	DataDir          string
	ControlPlaneVIPs []string
	Pools            []string // NAME=RANGE[,RANGE...][;option...]
	Mode             string
	Kubeconfig       string
	LBClass          string
	Namespace        string // the daemon's own namespace (downward API), for ServiceL2Status
	PodName          string // the daemon's own (mirror) pod, owner of its ServiceL2Status objects

	// BGP mode (--bgp-*), checked by parseBGP.
	BGPAS            string
	BGPRouterID      string
	BGPPeers         []string // ADDRESS,AS[,option=value...]
	BGPSourceAddress string
	BGPNextHopIPv6   string
	BGPPoolAttrs     []string // POOL=ATTRS
	// BGPPasswordFile holds the TCP MD5 password of every --bgp-peer, so the
	// password is not in the pod spec or the process arguments.
	BGPPasswordFile string

	TLSCACert         string
	TLSCAKey          string
	TLSCert           string
	TLSKey            string
	InsecureTransport bool
	// TLSCSR makes a worker ask the raftvip leader for its peer certificate through
	// the Kubernetes CSR API (signer raftvip.io/worker) instead of holding the CA
	// key or certificate files.
	TLSCSR bool
	// WorkerCertLifetime is the lifetime of the worker certificates a leader signs;
	// zero means a day.
	WorkerCertLifetime time.Duration
	// PeerCertLifetime is the lifetime of a certificate issued with --tls-ca-key
	// (renewed at two thirds of it); zero means seven days. Short values are for
	// tests of renewal.
	PeerCertLifetime time.Duration

	Raft                 raftstore.Timeouts
	FenceTimeout         time.Duration
	NodeDownTimeout      time.Duration
	WorkerRemovalTimeout time.Duration
	// MaxNonvoters caps the worker nonvoters the leader adds; joins past it are
	// refused (code nonvoter_limit) and the workers keep retrying. Zero means
	// raftstore.DefaultMaxNonvoters.
	MaxNonvoters int

	APIServerHealthURL      string
	APIServerHealthInterval time.Duration

	LogLevel  string
	LogFormat string

	// Nice is the scheduling priority the agent asks for (0 leaves it alone).
	Nice int
}

// Modes the agent knows: l2 puts each VIP on one node's interface and announces it
// with ARP/NDP; bgp advertises VIPs to routers from every eligible node (docs/bgp.md).
const (
	ModeL2  = "l2"
	ModeBGP = "bgp"
)

// Parsed is the validated, typed form of Config that the daemon runs on.
type Parsed struct {
	Config
	Advertise netip.Addr
	RaftAddr  string // advertise host:port
	Peers     []raftstore.Peer
	// IsVoter is true for control-plane nodes: voters, and --join --control-plane
	// nodes that the leader promotes. They run the voter loops from the start so a
	// promoted node is ready to lead.
	IsVoter bool
	VIPs    []netip.Addr
	Pools   []ipam.Pool
	BGP     bgpSettings // bgp mode only
}

// FlagError names the flag (or file) and the bad value so the agent can print one
// line that tells the operator exactly what to fix.
type FlagError struct {
	Flag  string
	Value string
	Err   error
}

func (e *FlagError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("--%s: %v", e.Flag, e.Err)
	}
	return fmt.Sprintf("--%s %q: %v", e.Flag, e.Value, e.Err)
}

func (e *FlagError) Unwrap() error { return e.Err }

func flagErr(flag, value string, format string, args ...any) error {
	return &FlagError{Flag: flag, Value: value, Err: fmt.Errorf(format, args...)}
}

// Validate parses and checks every flag that can be checked without touching the
// node: syntax, consistency between flags, and readable files. Checks that look at the
// interface or the data dir live in CheckEnvironment.
func (c Config) Validate() (*Parsed, error) {
	p := &Parsed{Config: c}
	if c.NodeName == "" {
		return nil, flagErr("node-name", "", "must be set (defaults to the hostname)")
	}
	if strings.ContainsAny(c.NodeName, " =,/") {
		return nil, flagErr("node-name", c.NodeName, "must not contain spaces, '=', ',' or '/'")
	}
	switch c.Mode {
	case ModeL2, ModeBGP:
	default:
		return nil, flagErr("mode", c.Mode, "unknown mode; want l2 or bgp")
	}
	if c.RaftPort < 1 || c.RaftPort > 65535 {
		return nil, flagErr("raft-port", strconv.Itoa(c.RaftPort), "must be between 1 and 65535")
	}
	if c.AdvertiseAddress == "" {
		return nil, flagErr("advertise-address", "", "must be set to this node's IP address that peers can reach")
	}
	adv, err := netip.ParseAddr(c.AdvertiseAddress)
	if err != nil {
		return nil, flagErr("advertise-address", c.AdvertiseAddress, "not an IP address")
	}
	p.Advertise = adv
	p.RaftAddr = net.JoinHostPort(adv.String(), strconv.Itoa(c.RaftPort))
	if _, _, err := net.SplitHostPort(c.StatusAddress); err != nil {
		return nil, flagErr("status-address", c.StatusAddress, "want HOST:PORT or :PORT")
	}
	if err := p.parsePeers(); err != nil {
		return nil, err
	}
	if c.AdminSocket != "" && !filepath.IsAbs(c.AdminSocket) {
		return nil, flagErr("admin-socket", c.AdminSocket, "want an absolute path")
	}
	if err := p.parseVIPs(); err != nil {
		return nil, err
	}
	pools, err := ipam.ParsePools(c.Pools)
	if err != nil {
		return nil, &FlagError{Flag: "pool", Err: err}
	}
	p.Pools = pools
	for _, pool := range pools {
		if pool.Interface != "" && p.Mode == ModeBGP {
			return nil, flagErr("pool", pool.Spec, "interface= is for l2 mode; bgp mode puts every VIP on lo")
		}
	}
	if err := p.parseBGP(); err != nil {
		return nil, err
	}
	if err := p.checkTLS(); err != nil {
		return nil, err
	}
	if err := p.checkTimeouts(); err != nil {
		return nil, err
	}
	if c.APIServerHealthURL != "" {
		u, err := url.Parse(c.APIServerHealthURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, flagErr("apiserver-health-url", c.APIServerHealthURL, "want an http(s) URL such as https://127.0.0.1:6443/livez")
		}
	}
	if c.Kubeconfig != "" {
		if err := readable(c.Kubeconfig); err != nil {
			return nil, flagErr("kubeconfig", c.Kubeconfig, "%v", err)
		}
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return nil, flagErr("log-format", c.LogFormat, "want text or json")
	}
	if c.Nice < -20 || c.Nice > 19 {
		return nil, flagErr("nice", strconv.Itoa(c.Nice), "must be between -20 and 19")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return nil, flagErr("log-level", c.LogLevel, "%v", err)
	}
	return p, nil
}

func (p *Parsed) parsePeers() error {
	if p.Bootstrap && len(p.Config.Peers) > 0 {
		return flagErr("bootstrap", "", "--bootstrap forms a one-voter cluster and --peer lists a voter set started all at once: give one, not both")
	}
	if len(p.Config.Peers) > 0 && len(p.Join) > 0 {
		return flagErr("join", strings.Join(p.Join, ","), "a node is either a voter (--peer) or joins as a nonvoter (--join), not both")
	}
	if p.MaxNonvoters < 0 {
		return flagErr("max-nonvoters", strconv.Itoa(p.MaxNonvoters), "must not be negative")
	}
	if len(p.Config.Peers) == 0 && len(p.Join) == 0 && !p.Bootstrap {
		return flagErr("peer", "", "give --bootstrap (first control-plane node), --join HOST:PORT (every other node), or the voter set with --peer NAME=HOST:PORT (self included)")
	}
	for _, j := range p.Join {
		if host, port, err := net.SplitHostPort(j); err != nil || host == "" || port == "" {
			return flagErr("join", j, "want HOST:PORT of a member or the control-plane VIP")
		}
		if j == p.RaftAddr {
			return flagErr("join", j, "is this node's own raft address; give another member's")
		}
	}
	if p.Bootstrap {
		p.Peers = []raftstore.Peer{{ID: p.NodeName, Address: p.RaftAddr}}
		p.IsVoter = true
		return nil
	}
	if len(p.Join) > 0 {
		p.IsVoter = p.ControlPlane
		return nil
	}
	names := map[string]bool{}
	addrs := map[string]string{}
	for _, raw := range p.Config.Peers {
		name, addr, ok := strings.Cut(raw, "=")
		if !ok || name == "" || addr == "" {
			return flagErr("peer", raw, "want NAME=HOST:PORT")
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" {
			return flagErr("peer", raw, "want NAME=HOST:PORT")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return flagErr("peer", raw, "port must be between 1 and 65535")
		}
		if names[name] {
			return flagErr("peer", raw, "duplicate peer name %q", name)
		}
		if other, dup := addrs[addr]; dup {
			return flagErr("peer", raw, "address %s is already used by peer %q", addr, other)
		}
		names[name] = true
		addrs[addr] = name
		p.Peers = append(p.Peers, raftstore.Peer{ID: name, Address: addr})
	}
	if !names[p.NodeName] {
		return flagErr("peer", strings.Join(p.Config.Peers, ","), "the voter set does not include this node %q; list every voter, self included", p.NodeName)
	}
	for _, peer := range p.Peers {
		if peer.ID == p.NodeName && peer.Address != p.RaftAddr {
			return flagErr("peer", peer.ID+"="+peer.Address, "this node's entry must match --advertise-address and --raft-port (%s)", p.RaftAddr)
		}
	}
	p.IsVoter = true
	return nil
}

func (p *Parsed) parseVIPs() error {
	var v4, v6 bool
	for _, raw := range p.ControlPlaneVIPs {
		a, err := netip.ParseAddr(raw)
		if err != nil || a.Zone() != "" {
			return flagErr("control-plane-vip", raw, "not an IP address")
		}
		if a.Is4In6() {
			a = a.Unmap()
		}
		if a.Is4() {
			if v4 {
				return flagErr("control-plane-vip", raw, "at most one IPv4 control-plane VIP")
			}
			v4 = true
		} else {
			if v6 {
				return flagErr("control-plane-vip", raw, "at most one IPv6 control-plane VIP")
			}
			v6 = true
		}
		if a == p.Advertise {
			return flagErr("control-plane-vip", raw, "must differ from --advertise-address")
		}
		p.VIPs = append(p.VIPs, a)
	}
	// In bgp mode VIPs live on lo and reach the segment through routers.
	if len(p.VIPs) > 0 && p.Interface == "" && p.Mode != ModeBGP {
		return flagErr("interface", "", "must name the interface that carries --control-plane-vip")
	}
	return nil
}

func (p *Parsed) checkTLS() error {
	if p.InsecureTransport {
		for _, f := range p.tlsFiles() {
			if f.path != "" {
				return flagErr(f.flag, f.path, "conflicts with --insecure-transport")
			}
		}
		if p.TLSCSR {
			return flagErr("tls-csr", "", "conflicts with --insecure-transport")
		}
		return nil
	}
	if p.TLSCACert == "" {
		return flagErr("tls-ca-cert", "", "raft traffic is mutual TLS: give --tls-ca-cert with --tls-ca-key (control-plane node: issue our own peer certificate), with --tls-csr (worker: ask the raftvip leader through a Kubernetes CSR) or with --tls-cert/--tls-key; --insecure-transport is for labs only")
	}
	if (p.TLSCert == "") != (p.TLSKey == "") {
		return flagErr("tls-key", p.TLSKey, "--tls-cert and --tls-key go together")
	}
	if p.TLSCert == "" && p.TLSCAKey == "" && !p.TLSCSR {
		return flagErr("tls-ca-key", "", "this node has no way to get a peer certificate: give --tls-ca-key (control-plane node: issue it from the cluster CA), --tls-csr (worker: ask the raftvip leader through a Kubernetes CSR) or --tls-cert/--tls-key")
	}
	if err := p.checkCSR(); err != nil {
		return err
	}
	if p.WorkerCertLifetime != 0 && p.WorkerCertLifetime < minPeerCertLifetime {
		return flagErr("worker-cert-lifetime", p.WorkerCertLifetime.String(), "must be at least %s", minPeerCertLifetime)
	}
	if p.TLSCert != "" && p.TLSCAKey != "" {
		return flagErr("tls-ca-key", p.TLSCAKey, "give either --tls-ca-key or --tls-cert/--tls-key, not both")
	}
	if p.PeerCertLifetime != 0 && p.PeerCertLifetime < minPeerCertLifetime {
		return flagErr("peer-cert-lifetime", p.PeerCertLifetime.String(), "must be at least %s", minPeerCertLifetime)
	}
	for _, f := range p.tlsFiles() {
		if f.path == "" {
			continue
		}
		if err := readable(f.path); err != nil {
			return flagErr(f.flag, f.path, "%v", err)
		}
	}
	return nil
}

// tlsFiles lists the certificate flags in a fixed order, so the first bad one is
// always the one reported.
func (p *Parsed) tlsFiles() []struct{ flag, path string } {
	return []struct{ flag, path string }{
		{"tls-ca-cert", p.TLSCACert}, {"tls-ca-key", p.TLSCAKey}, {"tls-cert", p.TLSCert}, {"tls-key", p.TLSKey},
	}
}

func (p *Parsed) checkTimeouts() error {
	t := p.Raft
	for _, d := range []struct {
		flag string
		v    time.Duration
		min  time.Duration
	}{
		{"raft-heartbeat-timeout", t.Heartbeat, 10 * time.Millisecond},
		{"raft-election-timeout", t.Election, 10 * time.Millisecond},
		{"raft-leader-loss-timeout", t.LeaderLoss, 10 * time.Millisecond},
		{"raft-leader-lease-timeout", t.LeaderLease, 5 * time.Millisecond},
		{"fence-timeout", p.FenceTimeout, 10 * time.Millisecond},
		{"node-down-timeout", p.NodeDownTimeout, 10 * time.Millisecond},
		{"worker-removal-timeout", p.WorkerRemovalTimeout, time.Second},
		{"apiserver-health-interval", p.APIServerHealthInterval, 10 * time.Millisecond},
	} {
		if d.v < d.min {
			return flagErr(d.flag, d.v.String(), "must be at least %s", d.min)
		}
	}
	// The announce loop acts on the lease and the fence only once per check
	// interval, so each ordering below leaves room for one late check.
	check := announceCheckInterval(p)
	if t.LeaderLoss > t.Heartbeat {
		return flagErr("raft-leader-loss-timeout", t.LeaderLoss.String(), "must be at most --raft-heartbeat-timeout (%s): raft's own check would start elections first", t.Heartbeat)
	}
	if t.LeaderLease >= t.LeaderLoss {
		return flagErr("raft-leader-lease-timeout", t.LeaderLease.String(), "must be shorter than --raft-leader-loss-timeout (%s): the old leader must stop announcing before followers start an election", t.LeaderLoss)
	}
	if t.LeaderLease+check > t.LeaderLoss {
		return flagErr("raft-leader-lease-timeout", t.LeaderLease.String(), "plus the lease check interval (%s) exceeds --raft-leader-loss-timeout (%s): a leader checking its lease late could still announce when followers elect", check, t.LeaderLoss)
	}
	if p.NodeDownTimeout < p.FenceTimeout+2*check {
		return flagErr("node-down-timeout", p.NodeDownTimeout.String(), "must be at least --fence-timeout (%s) plus two fence check intervals (%s) so a cut-off owner is silent before its VIPs move", p.FenceTimeout, 2*check)
	}
	return nil
}

// CheckEnvironment looks at this node before anything is changed: the data dir must be
// writable and its bolt file readable, and each VIP must fit the interface.
func (p *Parsed) CheckEnvironment(checkVIP func(iface string, vip netip.Addr) error) error {
	if err := raftstore.CheckDataDir(p.DataDir); err != nil {
		return flagErr("data-dir", p.DataDir, "%v", err)
	}
	if p.Mode == ModeBGP {
		// VIPs go on lo and routers carry them: the L2 segment checks do not apply.
		return nil
	}
	for _, v := range p.VIPs {
		if err := checkVIP(p.Interface, v); err != nil {
			return flagErr("control-plane-vip", v.String(), "%v", err)
		}
	}
	return nil
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errors.New("file does not exist")
		}
		return fmt.Errorf("cannot read: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cannot read: %w", err)
	}
	if st.IsDir() {
		return errors.New("is a directory, want a file")
	}
	return nil
}
