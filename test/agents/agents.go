// Package agents starts real raftvip agent processes for end-to-end tests and
// benchmarks: on loopback or inside the nodes of a netns lab, and reads their
// status endpoints.
package agents

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/raftvip/raftvip/daemon"
	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/test/lab"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the raftvip binary under test: $RAFTVIP_BIN (make test builds it)
// or one built once per test process from the repository root.
func Binary(t lab.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if p := os.Getenv("RAFTVIP_BIN"); p != "" {
			binPath = p
			return
		}
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "raftvip-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "raftvip")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatalf("raftvip binary: %v", binErr)
	}
	return binPath
}

// StatusPort is the status server port agents in a lab listen on.
const StatusPort = 7951

// RaftPort is the Raft port agents in a lab listen on.
const RaftPort = 7950

// Agent is one raftvip agent running in a lab node.
type Agent struct {
	Name  string
	Index int
	NS    string
	Args  []string
	Proc  *lab.Proc
	lab   *lab.Lab
}

// LabOptions choose what the lab cluster's agents run with.
type LabOptions struct {
	VIPs  []string // --control-plane-vip
	Extra []string // more flags for every agent
	Only  []int    // start only these nodes' agents (all but Workers are still in the peer list)
	// Workers are nodes whose agents join as nonvoters (--join to the first voter)
	// instead of getting the peer list; they are not in it either.
	Workers []int
	// PerNode adds flags for node i's agent only (after Extra, so they win).
	PerNode func(i int) []string
	// Bin is the binary to start, when not the one under test (Release).
	Bin string
}

// StartLab starts one agent per lab node, voters unless listed in Workers, with the
// lab's eth0 as --interface and its own node address for Raft.
func StartLab(t lab.TB, l *lab.Lab, o LabOptions) []*Agent {
	t.Helper()
	bin := o.Bin
	if bin == "" {
		bin = Binary(t)
	}
	var peers []string
	join := ""
	for i := range l.Nodes() {
		if slices.Contains(o.Workers, i) {
			continue
		}
		addr := net.JoinHostPort(l.NodeIP(i).String(), fmt.Sprint(RaftPort))
		peers = append(peers, fmt.Sprintf("--peer=%s=%s", name(i), addr))
		if join == "" {
			join = "--join=" + addr
		}
	}
	start := o.Only
	if start == nil {
		for i := range l.Nodes() {
			start = append(start, i)
		}
	}
	var out []*Agent
	for _, i := range start {
		a := &Agent{Name: name(i), Index: i, NS: l.Node(i), lab: l}
		a.Args = append([]string{"agent", "--node-name=" + a.Name, "--interface=" + lab.Iface,
			"--advertise-address=" + l.NodeIP(i).String(), fmt.Sprintf("--raft-port=%d", RaftPort),
			fmt.Sprintf("--status-address=:%d", StatusPort), "--data-dir=" + filepath.Join(l.Dir(), a.Name), "--admin-socket=" + filepath.Join(l.Dir(), a.Name+".sock"),
			"--insecure-transport", "--apiserver-health-url=", "--log-level=debug"}, peers...)
		if slices.Contains(o.Workers, i) {
			a.Args = append(a.Args[:len(a.Args)-len(peers)], join)
		}
		for _, v := range o.VIPs {
			a.Args = append(a.Args, "--control-plane-vip="+v)
		}
		a.Args = append(a.Args, o.Extra...)
		if o.PerNode != nil {
			a.Args = append(a.Args, o.PerNode(i)...)
		}
		a.Start(bin)
		out = append(out, a)
	}
	return out
}

func name(i int) string { return fmt.Sprintf("node%d", i) }

// Start (re)starts the agent process with its arguments.
func (a *Agent) Start(bin string) {
	a.Proc = a.lab.Start(a.NS, a.Name, append([]string{bin}, a.Args...)...)
}

// Status reads /raft/status from inside the lab node's namespace.
func (a *Agent) Status(ctx context.Context) (daemon.RaftStatus, error) {
	var st daemon.RaftStatus
	return st, a.get(ctx, "/raft/status", &st)
}

// State reads /state from inside the lab node's namespace.
func (a *Agent) State(ctx context.Context) (raftstore.State, error) {
	var st raftstore.State
	return st, a.get(ctx, "/state", &st)
}

// Metrics reads the text of /metrics from inside the lab node's namespace.
func (a *Agent) Metrics(ctx context.Context) (string, error) {
	var b strings.Builder
	err := a.fetch(ctx, "/metrics", func(r io.Reader) error {
		_, err := io.Copy(&b, r)
		return err
	})
	return b.String(), err
}

// get decodes the JSON at path of the agent's status server into v.
func (a *Agent) get(ctx context.Context, path string, v any) error {
	return a.fetch(ctx, path, func(r io.Reader) error { return json.NewDecoder(r).Decode(v) })
}

// fetch hands the body of path on the agent's status server to read.
func (a *Agent) fetch(ctx context.Context, path string, read func(io.Reader) error) error {
	c := &http.Client{Transport: &http.Transport{DialContext: a.lab.Dialer(a.NS)}, Timeout: time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", StatusPort, path), nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s on %s: %s", path, a.Name, resp.Status)
	}
	return read(resp.Body)
}

// Leader waits until every agent not in skip agrees on one leader and returns it.
func Leader(t lab.TB, all []*Agent, timeout time.Duration, skip ...*Agent) *Agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	skipped := map[*Agent]bool{}
	for _, s := range skip {
		skipped[s] = true
	}
	var last string
	for {
		var leader string
		agree := true
		for _, a := range all {
			if skipped[a] {
				continue
			}
			st, err := a.Status(ctx)
			if err != nil || st.Leader.ID == "" || (leader != "" && st.Leader.ID != leader) {
				agree = false
				last = fmt.Sprintf("%s: leader %q err %v", a.Name, st.Leader.ID, err)
				break
			}
			leader = st.Leader.ID
		}
		if agree {
			for _, a := range all {
				if a.Name == leader && !skipped[a] {
					return a
				}
			}
			last = "leader " + leader + " is a skipped agent"
		}
		select {
		case <-ctx.Done():
			for _, a := range all {
				t.Logf("--- %s log:\n%s", a.Name, a.Proc.Log())
			}
			t.Fatalf("agents never agreed on a leader: %s", last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Held is the VIPs the agent holds on its interface, failing the test when its
// status server does not answer.
func (a *Agent) Held(t lab.TB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := a.Status(ctx)
	if err != nil {
		t.Fatalf("status of %s: %v", a.Name, err)
	}
	return st.HeldVIPs
}
