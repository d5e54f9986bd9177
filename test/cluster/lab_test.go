package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
)

// newLabNetNS creates a network namespace of this test's own with a veth
// pair (both ends inside it; the kernel may lack the dummy driver), lab0
// carrying addrs (CIDR notation, from the lab ranges only), and
// removes it when the test ends, even on failure.
func newLabNetNS(t *testing.T, addrs ...string) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "rvcp-" + hex.EncodeToString(b)
	ip(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ip(t, "-n", name, "link", "set", "lo", "up")
	ip(t, "-n", name, "link", "add", "lab0", "type", "veth", "peer", "name", "lab1")
	ip(t, "-n", name, "link", "set", "lab1", "up")
	ip(t, "-n", name, "link", "set", "lab0", "up")
	for _, a := range addrs {
		args := []string{"-n", name, "addr", "add", a, "dev", "lab0"}
		if strings.Contains(a, ":") {
			args = append(args, "nodad")
		}
		ip(t, args...)
	}
	return name
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}
