package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// tlsAgents starts loopback agents one by one, the way a cluster grows from a
// --bootstrap node: each gets its own ports, a data dir and admin socket named
// after its data (a replacement machine keeps the name but not the data), and
// a peer certificate it issues itself from a shared CA.
type tlsAgents struct {
	t             testing.TB
	dir           string
	caCert, caKey string
	procs         []*agentProc
	// raft is the Raft address of the latest agent started under each name.
	raft map[string]string
}

// newTLSAgents makes the CA in a fresh short directory (unix socket paths are
// short; t.TempDir can be long), removed with every agent left at cleanup.
func newTLSAgents(t testing.TB, prefix string) *tlsAgents {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	ta := &tlsAgents{t: t, dir: dir, raft: map[string]string{}}
	ta.caCert, ta.caKey = writeCA(t, dir)
	t.Cleanup(func() {
		ta.killAll()
		os.RemoveAll(dir)
	})
	return ta
}

// socket is the admin socket of the agent whose data dir is named data.
func (ta *tlsAgents) socket(data string) string { return filepath.Join(ta.dir, data+".sock") }

// args are the flags of an agent named name, with data dir, socket and log
// named data, Raft on raftPort and status on statusPort.
func (ta *tlsAgents) args(name, data string, raftPort, statusPort int, extra ...string) []string {
	return append([]string{"agent", "--node-name=" + name, "--advertise-address=127.0.0.1",
		fmt.Sprintf("--raft-port=%d", raftPort), fmt.Sprintf("--status-address=127.0.0.1:%d", statusPort),
		"--data-dir=" + filepath.Join(ta.dir, data), "--admin-socket=" + ta.socket(data), "--apiserver-health-url=",
		"--tls-ca-cert=" + ta.caCert, "--tls-ca-key=" + ta.caKey}, extra...)
}

// start starts agent name on data with extra flags and records its Raft address.
func (ta *tlsAgents) start(name, data string, extra ...string) *agentProc {
	ta.t.Helper()
	rp, sp := freePort(ta.t), freePort(ta.t)
	a := &agentProc{name: name, status: fmt.Sprintf("http://127.0.0.1:%d", sp), log: filepath.Join(ta.dir, data+".log")}
	startAgent(ta.t, a, ta.args(name, data, rp, sp, extra...))
	ta.raft[name] = fmt.Sprintf("127.0.0.1:%d", rp)
	ta.procs = append(ta.procs, a)
	return a
}

// killAll kills every agent still running.
func (ta *tlsAgents) killAll() {
	for _, a := range ta.procs {
		if a.cmd.ProcessState == nil {
			a.cmd.Process.Kill()
		}
	}
}
