package raftstore

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// seed commits a pool, some allocations and an owner and returns the state
// every node must reach.
func seed(c *cluster, n int) State {
	c.apply(SetPools{Pools: []Pool{{Name: "default", Ranges: []string{"198.51.100.0/24"}, AutoAssign: true}}})
	for i := 0; i < n; i++ {
		c.apply(allocation(i))
	}
	by := c.apply(SetOwner{VIP: "198.51.100.1", Node: "n1", Service: "ns/svc-0"})
	want := by.State()
	c.converged(c.running(), want)
	return want
}

// reopenAlone starts id again from its data dir as a node without bootstrap
// peers (what an agent restarted after a recovery is) and waits until it leads.
func reopenAlone(t *testing.T, cfg Config) *Node {
	t.Helper()
	cfg.Peers = nil
	n, err := Open(cfg)
	if err != nil {
		t.Fatalf("open %s after recovery: %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { _ = n.Shutdown(5 * time.Second) })
	waitFor(t, cfg.NodeID+" to lead alone", n.IsLeader)
	return n
}

func TestBackupRoundTrip(t *testing.T) {
	c := newCluster(t, 3, newTestCA(t, "backup-ca"), DefaultTimeouts())
	c.leader()
	want := seed(c, 5)
	var follower *Node
	for _, n := range c.running() {
		if !n.IsLeader() {
			follower = n
		}
	}
	var buf bytes.Buffer
	h, err := follower.WriteBackup(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if h.Node != follower.id || h.Index == 0 || h.Term == 0 || len(h.Servers) != 3 || h.Allocations != 5 || h.Pools != 1 || h.Owners != 1 {
		t.Fatalf("header %+v", h)
	}
	got, _, st, err := ReadBackup(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got.SHA256 == "" || got.Size == 0 || got.Index != h.Index || !statesEqual(st, want) {
		t.Fatalf("read back %+v, state equal %v", got, statesEqual(st, want))
	}
	// Nothing new since: a second backup reuses the stored snapshot.
	var again bytes.Buffer
	if h2, err := follower.WriteBackup(&again); err != nil || h2.Index != h.Index {
		t.Fatalf("second backup: %+v, %v", h2, err)
	}
}

func TestReadBackupRefusesDamage(t *testing.T) {
	c := newCluster(t, 1, nil, DefaultTimeouts())
	c.leader()
	seed(c, 2)
	var buf bytes.Buffer
	if _, err := c.node("n1").WriteBackup(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	nl := bytes.IndexByte(good[len(backupMagic):], '\n') + len(backupMagic) + 1
	flipped := bytes.Clone(good)
	flipped[len(flipped)-5] ^= 0x20
	cases := map[string]struct {
		data []byte
		want string
	}{
		"empty":            {nil, "not a raftvip backup"},
		"other file":       {[]byte("hello world\n"), "not a raftvip backup"},
		"no header end":    {good[:len(backupMagic)+10], "backup header: no end of line"},
		"header not json":  {append([]byte(backupMagic), "{nope\n"...), "backup header"},
		"truncated body":   {good[:len(good)-3], "backup truncated"},
		"trailing data":    {append(bytes.Clone(good), 'x'), "data after"},
		"flipped body bit": {flipped, "sha256 differs"},
		"body only":        {good[nl:], "not a raftvip backup"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, _, err := ReadBackup(bytes.NewReader(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadBackup: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestRestoreBackupIntoFreshDir: a backup of a three-node cluster restored into
// an empty data dir starts as a one-voter cluster with the same state, under a
// new name at a new address.
func TestRestoreBackupIntoFreshDir(t *testing.T) {
	ca := newTestCA(t, "restore-ca")
	c := newCluster(t, 3, ca, DefaultTimeouts())
	c.leader()
	want := seed(c, 7)
	var buf bytes.Buffer
	if _, err := c.leader().WriteBackup(&buf); err != nil {
		t.Fatal(err)
	}
	c.stopAll()

	file := filepath.Join(t.TempDir(), "backup")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "fresh")
	if _, err := RestoreBackup(dir, "r1", "", bytes.NewReader(buf.Bytes())); err == nil || !strings.Contains(err.Error(), "give its raft address") {
		t.Fatalf("restore as a name the backup does not know, without an address: %v", err)
	}
	addr := freeAddr(t)
	rec, err := RestoreBackup(dir, "r1", addr, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Address != addr || len(rec.Previous) != 3 || !statesEqual(rec.State, want) {
		t.Fatalf("restore result %+v", rec)
	}
	if _, err := RestoreBackup(dir, "r1", addr, bytes.NewReader(buf.Bytes())); err == nil || !strings.Contains(err.Error(), "already holds raft state") {
		t.Fatalf("restore over existing state: %v", err)
	}
	n := reopenAlone(t, Config{NodeID: "r1", BindAddr: addr, DataDir: dir, TLS: ca.tlsConfig(t, "r1"), Logger: testLogger()})
	if !statesEqual(n.State(), want) {
		t.Fatalf("restored state differs:\n got %+v\nwant %+v", n.State(), want)
	}
	servers, err := n.Servers()
	if err != nil || len(servers) != 1 || servers[0].ID != "r1" || servers[0].Address != addr {
		t.Fatalf("restored configuration %+v, %v", servers, err)
	}
	if err := n.Apply(allocation(100), 5*time.Second); err != nil {
		t.Fatalf("restored cluster cannot commit: %v", err)
	}
	if _, err := RestoreBackup(filepath.Join(t.TempDir(), "other"), "r1", addr, bytes.NewReader(buf.Bytes()[:len(buf.Bytes())-1])); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("restore a damaged backup: %v", err)
	}
}

// TestRecoverDataDirAfterLosingTwo: two of three voters are killed for good;
// the survivor's data dir, recovered offline, leads alone with every entry it
// had, keeps its address, and commits again.
func TestRecoverDataDirAfterLosingTwo(t *testing.T) {
	ca := newTestCA(t, "recover-ca")
	c := newCluster(t, 3, ca, DefaultTimeouts())
	c.leader()
	want := seed(c, 9)
	cfg := c.cfgs["n1"]
	c.kill("n2")
	c.kill("n3")

	if _, err := RecoverDataDir(cfg.DataDir, "n1", ""); err == nil || !strings.Contains(err.Error(), "stop the agent") {
		t.Fatalf("recover while the node runs: %v", err)
	}
	c.kill("n1")
	if _, err := RecoverDataDir(filepath.Join(t.TempDir(), "missing"), "n1", ""); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("recover a missing data dir: %v", err)
	}
	empty := t.TempDir()
	if _, err := RecoverDataDir(empty, "n1", ""); err == nil || !strings.Contains(err.Error(), "holds no raft state") {
		t.Fatalf("recover an empty data dir: %v", err)
	}
	if _, err := RecoverDataDir(cfg.DataDir, "stranger", ""); err == nil || !strings.Contains(err.Error(), `"stranger" is not in the configuration`) {
		t.Fatalf("recover as a name that was never a member: %v", err)
	}
	rec, err := RecoverDataDir(cfg.DataDir, "n1", "")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Address != cfg.BindAddr || len(rec.Previous) != 3 || !statesEqual(rec.State, want) {
		t.Fatalf("recovery result %+v", rec)
	}
	n := reopenAlone(t, cfg)
	if !statesEqual(n.State(), want) {
		t.Fatalf("recovered state differs:\n got %+v\nwant %+v", n.State(), want)
	}
	if servers, err := n.Servers(); err != nil || len(servers) != 1 || servers[0].ID != "n1" {
		t.Fatalf("recovered configuration %+v, %v", servers, err)
	}
	if err := n.Apply(allocation(100), 5*time.Second); err != nil {
		t.Fatalf("recovered cluster cannot commit: %v", err)
	}
}

func TestRecoverRefusesCorruptStore(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, dbFile), bytes.Repeat([]byte("garbage!"), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RecoverDataDir(dir, "n1", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "raft.db") {
		t.Fatalf("recover a corrupt store: %v", err)
	}
	if _, err := RecoverDataDir(filepath.Join(dir, dbFile), "n1", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("recover with a file as data dir: %v", err)
	}
}
