package vip

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// withoutSysAdminEnv marks the child of TestHolderWithoutSysAdmin.
const withoutSysAdminEnv = "RAFTVIP_TEST_WITHOUT_SYS_ADMIN"

// TestHolderWithoutSysAdmin runs a Holder the way the static pod runs the
// agent: NET_ADMIN and NET_RAW, no CAP_SYS_ADMIN. Its netlink handle, kernel
// fence and watch subscriptions must not call setns, which needs SYS_ADMIN:
// under a kubelet the agent crash-looped with "failed to set into network
// namespace ... operation not permitted". The test re-executes itself in a new
// network namespace with SYS_ADMIN dropped from the bounding set.
func TestHolderWithoutSysAdmin(t *testing.T) {
	if os.Getenv(withoutSysAdminEnv) != "" {
		holderWithoutSysAdmin(t)
		return
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--net", "--", "setpriv", "--bounding-set", "-sys_admin", "--",
		self, "-test.run", "^TestHolderWithoutSysAdmin$", "-test.v", "-test.count", "1")
	cmd.Env = append(os.Environ(), withoutSysAdminEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child without CAP_SYS_ADMIN: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestHolderWithoutSysAdmin") {
		t.Fatalf("child did not run the test:\n%s", out)
	}
}

// holderWithoutSysAdmin is the child: a veth pair in its own namespace, a
// fenced Holder on one end, a VIP set, and a link-down seen through the
// subscriptions.
func holderWithoutSysAdmin(t *testing.T) {
	if has, err := effectiveCap(unix.CAP_SYS_ADMIN); err != nil || has {
		t.Fatalf("child still has CAP_SYS_ADMIN (%v): the test would prove nothing", err)
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "rv0"}, PeerName: "rv1"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	for _, name := range []string{"rv0", "rv1"} {
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatalf("set %s up: %v", name, err)
		}
	}
	h, err := NewHolder("rv0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.EnableFence(); err != nil {
		t.Fatal(err)
	}
	// The start-up sweep of other interfaces' fence tables opens its sockets
	// the same way.
	cur, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if _, err := RemoveStaleFences(cur, []string{FenceTable}); err != nil {
		t.Fatalf("remove stale fences without CAP_SYS_ADMIN: %v", err)
	}
	vip := netip.MustParseAddr("198.51.100.100")
	if err := h.Set([]Lease{{VIP: vip, Until: time.Now().Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	if got := h.Held(); len(got) != 1 || got[0] != vip {
		t.Fatalf("held %v, want %v", got, vip)
	}
	down := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = h.Watch(ctx, time.Hour, func(up bool) {
			if !up {
				select {
				case down <- struct{}{}:
				default:
				}
			}
		})
	}()
	l, err := netlink.LinkByName("rv0")
	if err != nil {
		t.Fatal(err)
	}
	// Watch passes only after both subscriptions started (a failed one is
	// retried, never passed over), and the next periodic pass is an hour
	// away: a report proves the subscriptions work.
	if err := netlink.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	select {
	case <-down:
	case <-time.After(time.Minute):
		t.Fatal("link down never reported: the netlink subscriptions did not start")
	}
}

// effectiveCap reports whether this process has capability c in effect.
func effectiveCap(c int) (bool, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return false, fmt.Errorf("CapEff %q: %w", v, err)
			}
			return mask&(1<<uint(c)) != 0, nil
		}
	}
	return false, fmt.Errorf("no CapEff in /proc/self/status")
}
