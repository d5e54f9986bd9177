package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

// BenchmarkJoinToVoters reports how long a kubeadm-style control plane takes to
// reach three voters: cp1 is up with --bootstrap and leads, then cp2 and cp3
// start together with --join and --control-plane; the clock stops when cp1's
// configuration lists all three as voters (both joined as nonvoters, caught up
// and were promoted together). Real agents, TLS and stores, on loopback; three
// trials per op (make bench runs one op), reported as median and max.
func BenchmarkJoinToVoters(b *testing.B) {
	var ds []time.Duration
	for range b.N * 3 {
		ds = append(ds, joinToVoters(b))
	}
	slices.Sort(ds)
	b.ReportMetric(ds[len(ds)/2].Seconds(), "s-p50-join-to-3-voters")
	b.ReportMetric(ds[len(ds)-1].Seconds(), "s-max-join-to-3-voters")
}

func joinToVoters(b *testing.B) time.Duration {
	dir, err := os.MkdirTemp("", "rv-joinbench")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	caCert, caKey := writeCA(b, dir)
	var procs []*agentProc
	defer func() {
		for _, a := range procs {
			if a.cmd.ProcessState == nil {
				a.cmd.Process.Kill()
			}
		}
	}()
	cp1Raft := freePort(b)
	start := func(name string, raftPort int, extra ...string) *agentProc {
		a := &agentProc{name: name, status: fmt.Sprintf("http://127.0.0.1:%d", freePort(b)), log: filepath.Join(dir, name+".log")}
		args := []string{"agent", "--node-name=" + name, "--advertise-address=127.0.0.1",
			fmt.Sprintf("--raft-port=%d", raftPort), "--status-address=" + a.status[len("http://"):],
			"--data-dir=" + filepath.Join(dir, name), "--admin-socket=" + filepath.Join(dir, name+".sock"), "--apiserver-health-url=",
			"--tls-ca-cert=" + caCert, "--tls-ca-key=" + caKey}
		startAgent(b, a, append(args, extra...))
		procs = append(procs, a)
		return a
	}
	cp1 := start("cp1", cp1Raft, "--bootstrap")
	waitAgreement(b, procs, "")
	join := fmt.Sprintf("--join=127.0.0.1:%d", cp1Raft)
	t0 := time.Now()
	start("cp2", freePort(b), join, "--control-plane")
	start("cp3", freePort(b), join, "--control-plane")
	deadline := t0.Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		st, err := getStatus(cp1.status)
		voters := 0
		for _, s := range st.Servers {
			if s.Suffrage == raftstore.SuffrageVoter {
				voters++
			}
		}
		if err == nil && voters == 3 {
			return time.Since(t0)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatal("the joiners were never promoted to three voters")
	return 0
}
