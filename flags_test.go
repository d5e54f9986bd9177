package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBadFlagsStopAgentNamingTheFlag(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "corrupt")
	if err := os.MkdirAll(corrupt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(corrupt, "raft.db"), filled(4096, 0xAB), 0o600); err != nil {
		t.Fatal(err)
	}
	notADir := filepath.Join(dir, "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := func(dataDir string) []string {
		return []string{"agent", "--node-name=n1", "--advertise-address=127.0.0.1", "--raft-port=17950",
			"--status-address=127.0.0.1:0", "--insecure-transport", "--data-dir=" + dataDir}
	}
	cases := []struct {
		name    string
		args    []string
		env     []string
		flag    string // the message must name it
		value   string // and the bad value, when there is one
		useBase bool
	}{
		{"malformed pool CIDR", []string{"--peer=n1=127.0.0.1:17950", "--pool=a=198.51.100.0/33"}, nil, "--pool", "198.51.100.0/33", true},
		{"malformed pool range", []string{"--peer=n1=127.0.0.1:17950", "--pool=a=198.51.100.20-198.51.100.10"}, nil, "--pool", "198.51.100.20-198.51.100.10", true},
		{"overlapping pools", []string{"--peer=n1=127.0.0.1:17950", "--pool=a=198.51.100.0/25", "--pool=b=198.51.100.100-198.51.100.110"}, nil, "--pool", "198.51.100.100", true},
		{"duplicate peer names", []string{"--peer=n1=127.0.0.1:17950", "--peer=n1=127.0.0.2:17950"}, nil, "--peer", "n1", true},
		{"peer list without self", []string{"--peer=n2=127.0.0.2:17950", "--peer=n3=127.0.0.3:17950"}, nil, "--peer", "n1", true},
		{"peer without port", []string{"--peer=n1=127.0.0.1"}, nil, "--peer", "n1=127.0.0.1", true},
		{"no peers and no join", nil, nil, "--peer", "", true},
		{"bootstrap with peer", []string{"--bootstrap", "--peer=n1=127.0.0.1:17950"}, nil, "--bootstrap", "--peer", true},
		{"join and peer", []string{"--join=127.0.0.2:17950", "--peer=n1=127.0.0.1:17950"}, nil, "--join", "127.0.0.2:17950", true},
		{"join without port", []string{"--join=127.0.0.2"}, nil, "--join", "127.0.0.2", true},
		{"second join malformed", []string{"--join=127.0.0.2:17950", "--join=cp3", "--control-plane"}, nil, "--join", "cp3", true},
		{"join to self", []string{"--join=127.0.0.1:17950", "--control-plane"}, nil, "--join", "127.0.0.1:17950", true},
		{"relative admin socket", []string{"--bootstrap", "--admin-socket=admin.sock"}, nil, "--admin-socket", "admin.sock", true},
		{"negative nonvoter cap", []string{"--bootstrap", "--max-nonvoters=-1"}, nil, "--max-nonvoters", "-1", true},
		{"unknown mode", []string{"--peer=n1=127.0.0.1:17950", "--mode=l3"}, nil, "--mode", "l3", true},
		{"malformed advertise address", []string{"agent", "--node-name=n1", "--advertise-address=10.0.0.300", "--peer=n1=10.0.0.300:7950", "--insecure-transport"}, nil, "--advertise-address", "10.0.0.300", false},
		{"malformed control-plane VIP", []string{"--peer=n1=127.0.0.1:17950", "--interface=lo", "--control-plane-vip=198.51.100.1000"}, nil, "--control-plane-vip", "198.51.100.1000", true},
		{"two IPv4 control-plane VIPs", []string{"--peer=n1=127.0.0.1:17950", "--interface=lo", "--control-plane-vip=198.51.100.100", "--control-plane-vip=198.51.100.101"}, nil, "--control-plane-vip", "198.51.100.101", true},
		{"VIP without interface", []string{"--peer=n1=127.0.0.1:17950", "--control-plane-vip=198.51.100.100"}, nil, "--interface", "", true},
		{"missing CA certificate file", []string{"agent", "--node-name=n1", "--advertise-address=127.0.0.1", "--peer=n1=127.0.0.1:7950", "--tls-ca-cert=/nonexistent/ca.crt", "--tls-ca-key=/nonexistent/ca.key"}, nil, "--tls-ca-cert", "/nonexistent/ca.crt", false},
		{"garbage CA certificate", []string{"agent", "--node-name=n1", "--advertise-address=127.0.0.1", "--raft-port=17950", "--status-address=127.0.0.1:0", "--peer=n1=127.0.0.1:17950", "--data-dir=" + filepath.Join(dir, "d1"), "--tls-ca-cert=" + garbage, "--tls-ca-key=" + garbage}, nil, "--tls-ca-cert", garbage, false},
		{"no TLS and not insecure", []string{"agent", "--node-name=n1", "--advertise-address=127.0.0.1", "--peer=n1=127.0.0.1:7950"}, nil, "--tls-ca-cert", "", false},
		{"lease longer than leader loss", []string{"--peer=n1=127.0.0.1:17950", "--raft-leader-loss-timeout=100ms", "--raft-leader-lease-timeout=200ms"}, nil, "--raft-leader-lease-timeout", "200ms", true},
		{"leader loss longer than heartbeat", []string{"--peer=n1=127.0.0.1:17950", "--raft-heartbeat-timeout=100ms", "--raft-leader-loss-timeout=200ms"}, nil, "--raft-leader-loss-timeout", "200ms", true},
		{"node-down not longer than fence", []string{"--peer=n1=127.0.0.1:17950", "--fence-timeout=1s", "--node-down-timeout=500ms"}, nil, "--node-down-timeout", "500ms", true},
		{"nice out of range", []string{"--peer=n1=127.0.0.1:17950", "--nice=-40"}, nil, "--nice", "-40", true},
		{"bad log format", []string{"--peer=n1=127.0.0.1:17950", "--log-format=xml"}, nil, "--log-format", "xml", true},
		{"bad pool from environment", []string{"--peer=n1=127.0.0.1:17950"}, []string{"RAFTVIP_POOL=a=not-a-range"}, "--pool", "not-a-range", true},
		{"data dir not writable", []string{"agent", "--node-name=n1", "--advertise-address=127.0.0.1", "--raft-port=17950", "--status-address=127.0.0.1:0", "--peer=n1=127.0.0.1:17950", "--insecure-transport", "--data-dir=" + filepath.Join(notADir, "sub")}, nil, "--data-dir", filepath.Join(notADir, "sub"), false},
		{"corrupt bolt file", []string{"agent", "--node-name=n1", "--advertise-address=127.0.0.1", "--raft-port=17950", "--status-address=127.0.0.1:0", "--peer=n1=127.0.0.1:17950", "--insecure-transport", "--data-dir=" + corrupt}, nil, "--data-dir", "raft.db", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			fresh := filepath.Join(dir, "fresh", strings.ReplaceAll(tc.name, " ", "-"))
			if tc.useBase {
				args = append(base(fresh), tc.args...)
			}
			code, out := run(t, tc.env, args...)
			if code != 2 {
				t.Fatalf("exit code %d, want 2; output:\n%s", code, out)
			}
			line := strings.TrimSpace(out)
			if strings.Count(line, "\n") != 0 {
				t.Errorf("want one line, got:\n%s", out)
			}
			if !strings.Contains(line, tc.flag) || !strings.Contains(line, tc.value) {
				t.Errorf("message %q does not name %s and %q", line, tc.flag, tc.value)
			}
			if tc.useBase {
				if _, err := os.Stat(fresh); !os.IsNotExist(err) {
					t.Errorf("agent touched the data dir %s before refusing: %v", fresh, err)
				}
			}
		})
	}
}

func filled(n int, b byte) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func TestDefaultNodeNameIsLowercasedHostname(t *testing.T) {
	for _, tt := range []struct {
		hostname string
		err      error
		want     string
	}{
		{"node1", nil, "node1"},
		{"Node-1.Example.COM", nil, "node-1.example.com"},
		{" CP2\n", nil, "cp2"},
		{"ignored", os.ErrPermission, ""},
	} {
		got := defaultNodeName(func() (string, error) { return tt.hostname, tt.err })
		if got != tt.want {
			t.Errorf("hostname %q (err %v): node name %q, want %q", tt.hostname, tt.err, got, tt.want)
		}
	}
}
