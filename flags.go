package main

import (
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/raftvip/raftvip/daemon"
	"github.com/raftvip/raftvip/raftstore"
)

// Flag defaults that are not raft timeouts. Raft timeouts come from
// raftstore.DefaultTimeouts so the library and the CLI can never disagree.
const (
	defaultRaftPort       = 7950
	defaultStatusAddress  = "127.0.0.1:7951"
	defaultDataDir        = "/var/lib/raftvip"
	defaultFenceTimeout   = 150 * time.Millisecond
	defaultNodeDown       = 250 * time.Millisecond
	defaultHealthURL      = "https://127.0.0.1:6443/livez"
	defaultHealthInterval = 250 * time.Millisecond
	defaultNice           = -20
	defaultWorkerRemoval  = 10 * time.Minute
	defaultAdminSocket    = "/run/raftvip/admin.sock"
)

// defaultNodeName is the node name the kubelet registers when none is given: the
// hostname, trimmed and lowercased (Kubernetes node names are lowercase DNS names), so
// --node-name matches the Node object without being set.
func defaultNodeName(hostname func() (string, error)) string {
	h, err := hostname()
	if err != nil {
		return ""
	}
	return strings.ToLower(strings.TrimSpace(h))
}

// agentFlags is shared by `agent` and `manifest pod`, so the manifest can carry every
// agent flag through unchanged.
func agentFlags() []cli.Flag {
	hostname := defaultNodeName(os.Hostname)
	t := raftstore.DefaultTimeouts()
	str := func(name, value, usage string) cli.Flag {
		return &cli.StringFlag{Name: name, Value: value, Usage: usage, EnvVars: []string{envName(name)}}
	}
	list := func(name, usage string) cli.Flag {
		return &cli.StringSliceFlag{Name: name, Usage: usage, EnvVars: []string{envName(name)}}
	}
	dur := func(name string, value time.Duration, usage string) cli.Flag {
		return &cli.DurationFlag{Name: name, Value: value, Usage: usage, EnvVars: []string{envName(name)}}
	}
	return []cli.Flag{
		str("node-name", hostname, "this node's name: its Raft server ID and the Kubernetes node name (defaults to the lowercased hostname, as the kubelet's)"),
		str("interface", "", "interface that carries the VIPs (required with --control-plane-vip in l2 mode; bgp mode puts VIPs on lo)"),
		str("advertise-address", "", "this node's IP address that peers dial for Raft (required)"),
		&cli.IntFlag{Name: "raft-port", Value: defaultRaftPort, Usage: "TCP port for Raft traffic (mutual TLS)", EnvVars: []string{envName("raft-port")}},
		str("status-address", defaultStatusAddress, "HOST:PORT of the read-only, unauthenticated status server (/raft/status, /state, /healthz, /readyz, /metrics); loopback by default, e.g. :7951 exposes it (then /state still answers local clients only)"),
		list("peer", "voter NAME=HOST:PORT, repeatable, self included; every voter gets the same list (env: space or comma separated)"),
		list("join", "HOST:PORT of a member or the control-plane VIP, repeatable, tried in turn; joins as a nonvoter (workers, or with --control-plane a voter-to-be)"),
		&cli.BoolFlag{Name: "bootstrap", Usage: "first control-plane node: form a one-voter cluster when the data dir has no state; refused when a cluster answers at a --join address", EnvVars: []string{envName("bootstrap")}},
		&cli.BoolFlag{Name: "control-plane", Usage: "with --join: join as a nonvoter and be promoted to voter by the leader once caught up", EnvVars: []string{envName("control-plane")}},
		str("admin-socket", defaultAdminSocket, "root-only unix socket for 'raftvip members' and 'raftvip snapshot save'; empty disables it"),
		str("data-dir", defaultDataDir, "directory for the Raft log, stable store and snapshots"),
		list("control-plane-vip", "control-plane VIP held by the Raft leader; repeatable: at most one IPv4 and one IPv6"),
		list("pool", "address pool NAME=RANGE[,RANGE...][;auto-assign=false][;include-network-broadcast=true][;interface=IFACE]; RANGE is a CIDR, FIRST-LAST or one address; interface= puts the pool's VIPs on IFACE instead of --interface (l2 mode); repeatable (env: space separated)"),
		str("mode", daemon.ModeL2, "how VIPs are announced: l2 (ARP/NDP from one node) or bgp (routes from every eligible node, see docs/bgp.md)"),
		str("bgp-as", "", "bgp mode: this node's AS number"),
		str("bgp-router-id", "", "bgp mode: BGP identifier, an IPv4 address (default: --advertise-address)"),
		list("bgp-peer", "bgp mode: router ADDRESS,AS[,port=N][,password=S][,multihop=N][,hold=DURATION]; repeatable (env: space separated); password= shows in the process arguments, prefer --bgp-password-file"),
		str("bgp-password-file", "", "bgp mode: file holding the TCP MD5 password of every --bgp-peer (keeps it out of the pod spec; mounted by `manifest pod`)"),
		str("bgp-source-address", "", "bgp mode: local address BGP sessions are dialled from"),
		str("bgp-next-hop-ipv6", "", "bgp mode: this node's IPv6 address, the next hop of IPv6 VIPs when --advertise-address is IPv4"),
		list("bgp-pool-attrs", "bgp mode: path attributes of a pool's VIPs POOL=community=ASN:VALUE[,community=...][,local-pref=N]; repeatable (env: space separated)"),
		str("kubeconfig", "", "kubeconfig for Services and EndpointSlices; empty runs the control-plane VIP only"),
		str("lb-class", "", "spec.loadBalancerClass this agent serves; empty serves Services without a class"),
		str("namespace", "kube-system", "namespace of the daemon's pod (downward API), where ServiceL2Status objects live"),
		str("pod-name", "", "name of the daemon's (mirror) pod, owner of its ServiceL2Status objects (default raftvip-<node-name>)"),
		str("tls-ca-cert", "", "cluster CA certificate (PEM) that every Raft peer certificate must chain to, e.g. /etc/kubernetes/pki/ca.crt"),
		str("tls-ca-key", "", "cluster CA key (PEM): issue this node's own short-lived peer certificate, e.g. /etc/kubernetes/pki/ca.key"),
		str("tls-cert", "", "this node's peer certificate (PEM), instead of --tls-ca-key"),
		str("tls-key", "", "key of --tls-cert (PEM)"),
		&cli.BoolFlag{Name: "tls-csr", Usage: "worker: get the peer certificate through a Kubernetes CSR (signer raftvip.io/worker) that the raftvip leader approves; needs --kubeconfig or an in-cluster ServiceAccount", EnvVars: []string{envName("tls-csr")}},
		dur("peer-cert-lifetime", 7*24*time.Hour, "lifetime of the peer certificate issued with --tls-ca-key; renewed in place at two thirds of it"),
		dur("worker-cert-lifetime", 24*time.Hour, "leader: lifetime of the worker certificates it signs for --tls-csr workers; workers renew at two thirds of it"),
		&cli.BoolFlag{Name: "insecure-transport", Usage: "plain TCP between peers: labs only, anyone on the network can join", EnvVars: []string{envName("insecure-transport")}},
		dur("raft-leader-loss-timeout", t.LeaderLoss, "a voter that has not heard from the leader this long campaigns, in a turn that keeps voters from campaigning together (up to 2x(voters-1) fifths of it later); between the leader lease and the heartbeat timeout"),
		dur("raft-heartbeat-timeout", t.Heartbeat, "fallback: raft's own check starts an election after this long without the leader; the leader heartbeats every tenth of it"),
		dur("raft-election-timeout", t.Election, "candidate restarts an election after this long without a winner"),
		dur("raft-leader-lease-timeout", t.LeaderLease, "leader steps down (and drops the control-plane VIP) after this long without a quorum; plus the lease check interval <= leader-loss timeout"),
		dur("raft-commit-timeout", t.Commit, "leader heartbeat cadence when idle"),
		dur("raft-snapshot-interval", t.SnapshotInterval, "how often Raft checks whether to snapshot"),
		&cli.Uint64Flag{Name: "raft-snapshot-threshold", Value: t.SnapshotThreshold, Usage: "log entries since the last snapshot before taking a new one", EnvVars: []string{envName("raft-snapshot-threshold")}},
		dur("fence-timeout", defaultFenceTimeout, "a node that has not heard from a leader this long drops its service VIPs"),
		dur("node-down-timeout", defaultNodeDown, "the leader moves VIPs away from a node silent this long; > fence timeout"),
		dur("worker-removal-timeout", defaultWorkerRemoval, "the leader removes a worker (nonvoter) silent this long from the raft configuration; it re-joins when it returns"),
		&cli.IntFlag{Name: "max-nonvoters", Value: raftstore.DefaultMaxNonvoters, Usage: "the leader refuses worker joins past this many nonvoters (metric raftvip_raft_joins_refused_total{reason=\"nonvoter_limit\"}); refused workers retry with backoff", EnvVars: []string{envName("max-nonvoters")}},
		str("apiserver-health-url", defaultHealthURL, "local kube-apiserver liveness URL checked by voters; empty disables the check"),
		dur("apiserver-health-interval", defaultHealthInterval, "how often voters check the local kube-apiserver"),
		&cli.IntFlag{Name: "nice", Value: defaultNice, Usage: "scheduling priority for the agent's threads (needs CAP_SYS_NICE; 0 leaves it alone): keeps heartbeats on time when the node's CPUs are saturated", EnvVars: []string{envName("nice")}},
		str("log-level", "info", "debug, info, warn or error"),
		str("log-format", "text", "text or json"),
	}
}

// repeated flattens a repeatable flag: each value may itself hold several items
// separated by spaces (environment variables) or, where sep is non-empty, by sep.
func repeated(c *cli.Context, name, sep string) []string {
	var out []string
	for _, v := range c.StringSlice(name) {
		for _, f := range strings.Fields(v) {
			if sep == "" {
				out = append(out, f)
				continue
			}
			for _, s := range strings.Split(f, sep) {
				if s != "" {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

func configFromFlags(c *cli.Context) daemon.Config {
	podName := c.String("pod-name")
	if podName == "" {
		podName = "raftvip-" + c.String("node-name")
	}
	return daemon.Config{
		NodeName:           c.String("node-name"),
		Interface:          c.String("interface"),
		AdvertiseAddress:   c.String("advertise-address"),
		RaftPort:           c.Int("raft-port"),
		StatusAddress:      c.String("status-address"),
		Peers:              repeated(c, "peer", ","),
		Join:               repeated(c, "join", ","),
		Bootstrap:          c.Bool("bootstrap"),
		ControlPlane:       c.Bool("control-plane"),
		AdminSocket:        c.String("admin-socket"),
		DataDir:            c.String("data-dir"),
		ControlPlaneVIPs:   repeated(c, "control-plane-vip", ","),
		Pools:              repeated(c, "pool", ""),
		Mode:               c.String("mode"),
		BGPAS:              c.String("bgp-as"),
		BGPRouterID:        c.String("bgp-router-id"),
		BGPPeers:           repeated(c, "bgp-peer", ""),
		BGPSourceAddress:   c.String("bgp-source-address"),
		BGPNextHopIPv6:     c.String("bgp-next-hop-ipv6"),
		BGPPoolAttrs:       repeated(c, "bgp-pool-attrs", ""),
		BGPPasswordFile:    c.String("bgp-password-file"),
		Kubeconfig:         c.String("kubeconfig"),
		LBClass:            c.String("lb-class"),
		Namespace:          c.String("namespace"),
		PodName:            podName,
		TLSCACert:          c.String("tls-ca-cert"),
		TLSCAKey:           c.String("tls-ca-key"),
		TLSCert:            c.String("tls-cert"),
		TLSKey:             c.String("tls-key"),
		TLSCSR:             c.Bool("tls-csr"),
		WorkerCertLifetime: c.Duration("worker-cert-lifetime"),
		InsecureTransport:  c.Bool("insecure-transport"),
		PeerCertLifetime:   c.Duration("peer-cert-lifetime"),
		Raft: raftstore.Timeouts{
			Heartbeat:         c.Duration("raft-heartbeat-timeout"),
			Election:          c.Duration("raft-election-timeout"),
			LeaderLoss:        c.Duration("raft-leader-loss-timeout"),
			LeaderLease:       c.Duration("raft-leader-lease-timeout"),
			Commit:            c.Duration("raft-commit-timeout"),
			SnapshotInterval:  c.Duration("raft-snapshot-interval"),
			SnapshotThreshold: c.Uint64("raft-snapshot-threshold"),
		},
		FenceTimeout:            c.Duration("fence-timeout"),
		NodeDownTimeout:         c.Duration("node-down-timeout"),
		WorkerRemovalTimeout:    c.Duration("worker-removal-timeout"),
		MaxNonvoters:            c.Int("max-nonvoters"),
		APIServerHealthURL:      c.String("apiserver-health-url"),
		APIServerHealthInterval: c.Duration("apiserver-health-interval"),
		LogLevel:                c.String("log-level"),
		LogFormat:               c.String("log-format"),
		Nice:                    c.Int("nice"),
	}
}
