package kubeadm

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

const (
	// token and certKey are fixed so the joiners' configs are known before
	// init; the test cluster lives for one run.
	token   = "rvtest.0123456789abcdef"
	certKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// caCertHash is kubeadm's discovery hash of node 0's CA: sha256 of its
// SubjectPublicKeyInfo.
func (h *harness) caCertHash() string {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.nodes[0].Dir, "fs/etc/upper/kubernetes/pki/ca.crt"))
	if err != nil {
		h.t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		h.t.Fatal("ca.crt of node 1 holds no PEM block")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		h.t.Fatal(err)
	}
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// joinControlPlane runs kubeadm join --control-plane on node i through the
// VIP, then drops raftvip's manifest with --join to node 1 and
// --control-plane, as the docs say.
func (h *harness) joinControlPlane(i int) {
	h.t.Helper()
	n := h.nodes[i]
	cfg := h.writeConfig(i, KubeadmConfig{Name: n.Name, IP: n.IP, Endpoint: endpoint, Join: true,
		Token: token, CertificateKey: certKey, CACertHash: h.caCertHash()})
	if _, err := h.kubeadm(i, "join", "--config", cfg); err != nil {
		h.t.Fatal(err)
	}
	h.raftvipManifest(i, "--join", h.nodes[0].IP+":7950", "--control-plane")
}

// members asks node i's agent for the member list over its admin socket.
func (h *harness) members(i int) (raftstore.MemberList, error) {
	var list raftstore.MemberList
	out, err := h.nodes[i].Exec(h.raftvip, "members", "list", "-o", "json")
	if err != nil {
		return list, err
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return list, fmt.Errorf("members list on %s: %w: %s", h.nodes[i].Name, err, out)
	}
	return list, nil
}

// waitVoters waits until node i's agent reports exactly want as voters, all
// answered by the leader.
func (h *harness) waitVoters(i int, want ...string) raftstore.MemberList {
	h.t.Helper()
	deadline := time.Now().Add(slow)
	for {
		list, err := h.members(i)
		if err == nil && list.FromLeader && sameSet(voters(list), want) {
			return list
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("voters on %s never became %v: last %+v, %v", h.nodes[i].Name, want, list, err)
		}
		time.Sleep(time.Second)
	}
}

func voters(l raftstore.MemberList) []string {
	var v []string
	for _, m := range l.Members {
		if m.Suffrage == "voter" {
			v = append(v, m.ID)
		}
	}
	return v
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		if seen[x] == 0 {
			return false
		}
		seen[x]--
	}
	return true
}

// newHA builds the three-node cluster: init on node 1, control-plane joins
// on nodes 2 and 3, three raftvip voters.
func newHA(t testing.TB) *harness {
	t.Helper()
	h := newHarness(t, 3)
	h.initFirst()
	h.joinControlPlane(1)
	h.joinControlPlane(2)
	h.waitVoters(0, "cp1", "cp2", "cp3")
	return h
}

// leader returns the index of the node whose agent leads (and holds the VIP).
func (h *harness) leader() int {
	h.t.Helper()
	list := h.waitVoters(0, "cp1", "cp2", "cp3")
	for _, m := range list.Members {
		if m.Leader {
			for i, n := range h.nodes {
				if n.Name == m.ID {
					return i
				}
			}
		}
	}
	h.t.Fatalf("no leader in %+v", list)
	return -1
}

// cutLeader cuts the VIP holder's link and returns its index and how long the
// API server did not answer through the VIP.
func (h *harness) cutLeader() (int, time.Duration) {
	h.t.Helper()
	l := h.leader()
	cut := time.Now()
	h.lab.CutLink(l)
	ctx, cancel := context.WithTimeout(context.Background(), slow)
	defer cancel()
	back, err := h.waitVIP(ctx)
	if err != nil {
		h.t.Fatalf("VIP never answered after cutting %s: %v", h.nodes[l].Name, err)
	}
	return l, back.Sub(cut)
}

// follower returns the index of the highest-numbered node whose agent is a
// voter but not the leader, and not one of skip.
func (h *harness) follower(skip ...int) int {
	h.t.Helper()
	l := h.leader()
	for i := len(h.nodes) - 1; i >= 0; i-- {
		if i != l && !slices.Contains(skip, i) {
			return i
		}
	}
	h.t.Fatalf("no follower outside %v (leader %d)", skip, l)
	return -1
}

// kubectlRetry runs kubectl until it succeeds or slow has passed.
func (h *harness) kubectlRetry(args ...string) (string, error) {
	deadline := time.Now().Add(slow)
	for {
		out, err := h.kubectl(args...)
		if err == nil || time.Now().After(deadline) {
			return out, err
		}
		time.Sleep(2 * time.Second)
	}
}
