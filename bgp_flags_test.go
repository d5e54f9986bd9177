package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadBGPFlagsStopAgentNamingTheFlag runs the real binary: a malformed --bgp-*
// value stops the agent with exit code 2 and one line naming the flag and the value,
// before it touches the data dir.
func TestBadBGPFlagsStopAgentNamingTheFlag(t *testing.T) {
	dir := t.TempDir()
	base := func(dataDir string) []string {
		return []string{"agent", "--node-name=n1", "--advertise-address=127.0.0.1", "--raft-port=17950",
			"--status-address=127.0.0.1:0", "--insecure-transport", "--data-dir=" + dataDir, "--peer=n1=127.0.0.1:17950"}
	}
	cases := []struct {
		name  string
		args  []string
		env   []string
		flag  string
		value string
	}{
		{"bgp mode without AS", []string{"--mode=bgp", "--bgp-peer=127.0.0.2,64500"}, nil, "--bgp-as", ""},
		{"AS not a number", []string{"--mode=bgp", "--bgp-as=sixty", "--bgp-peer=127.0.0.2,64500"}, nil, "--bgp-as", "sixty"},
		{"AS out of range", []string{"--mode=bgp", "--bgp-as=4294967296", "--bgp-peer=127.0.0.2,64500"}, nil, "--bgp-as", "4294967296"},
		{"bgp mode without peer", []string{"--mode=bgp", "--bgp-as=64512"}, nil, "--bgp-peer", ""},
		{"peer with a bad AS", []string{"--mode=bgp", "--bgp-as=64512", "--bgp-peer=127.0.0.2,0"}, nil, "--bgp-peer", "127.0.0.2,0"},
		{"peer with a bad hold time", []string{"--mode=bgp", "--bgp-as=64512", "--bgp-peer=127.0.0.2,64500,hold=2500ms"}, nil, "--bgp-peer", "2500ms"},
		{"peer from the environment", []string{"--mode=bgp", "--bgp-as=64512"}, []string{"RAFTVIP_BGP_PEER=127.0.0.2,64500,port=x"}, "--bgp-peer", "port"},
		{"IPv6 VIP without IPv6 next hop", []string{"--mode=bgp", "--bgp-as=64512", "--bgp-peer=127.0.0.2,64500", "--control-plane-vip=2001:db8:100::100"}, nil, "--control-plane-vip", "2001:db8:100::100"},
		{"bad pool attributes", []string{"--mode=bgp", "--bgp-as=64512", "--bgp-peer=127.0.0.2,64500", "--pool=web=198.51.100.128/28", "--bgp-pool-attrs=web=local-pref=0"}, nil, "--bgp-pool-attrs", "web=local-pref=0"},
		{"bgp flag in l2 mode", []string{"--bgp-as=64512"}, nil, "--bgp-as", "64512"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fresh := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			code, out := run(t, tc.env, append(base(fresh), tc.args...)...)
			if code != 2 {
				t.Fatalf("exit code %d, want 2; output:\n%s", code, out)
			}
			line := strings.TrimSpace(out)
			if strings.Contains(line, "\n") {
				t.Errorf("want one line, got:\n%s", out)
			}
			if !strings.Contains(line, tc.flag) || !strings.Contains(line, tc.value) {
				t.Errorf("message %q does not name %s and %q", line, tc.flag, tc.value)
			}
			if _, err := os.Stat(fresh); !os.IsNotExist(err) {
				t.Errorf("agent touched the data dir %s before refusing: %v", fresh, err)
			}
		})
	}
}
