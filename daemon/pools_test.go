package daemon

import (
	"strings"
	"testing"

	"github.com/raftvip/raftvip/daemon/ipam"
	"github.com/raftvip/raftvip/raftstore"
)

func mustPools(t *testing.T, flags ...string) []ipam.Pool {
	t.Helper()
	ps, err := ipam.ParsePools(flags)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func TestCommittedPoolsRoundTrip(t *testing.T) {
	flags := mustPools(t, "web=198.51.100.0/25,2001:db8:100::100/120", "db=198.51.100.200-198.51.100.210;auto-assign=false;interface=eth0.20")
	committed := map[string]raftstore.Pool{}
	for _, p := range committedPools(flags) {
		committed[p.Name] = p
	}
	back, err := poolsFromState(committed)
	if err != nil {
		t.Fatal(err)
	}
	if drift := poolDrift(back, committed); drift != "" {
		t.Fatalf("round trip drifted: %s", drift)
	}
	for _, p := range back {
		if p.Name == "web" {
			// The network address of the /25 was trimmed once and must not be trimmed again.
			if got := p.Ranges[0].First.String(); got != "198.51.100.1" {
				t.Errorf("web first address %s, want 198.51.100.1", got)
			}
			if got := p.Ranges[0].Last.String(); got != "198.51.100.126" {
				t.Errorf("web last address %s, want 198.51.100.126", got)
			}
		}
		if p.Name == "db" && p.AutoAssign {
			t.Errorf("db lost auto-assign=false")
		}
		if want := map[string]string{"db": "eth0.20"}[p.Name]; p.Interface != want {
			t.Errorf("pool %s has interface %q after the round trip, want %q", p.Name, p.Interface, want)
		}
	}
}

func TestPoolDrift(t *testing.T) {
	a := mustPools(t, "a=198.51.100.100-198.51.100.150")
	b := mustPools(t, "a=198.51.100.100-198.51.100.160")
	commit := func(ps []ipam.Pool) map[string]raftstore.Pool {
		m := map[string]raftstore.Pool{}
		for _, p := range committedPools(ps) {
			m[p.Name] = p
		}
		return m
	}
	cases := []struct {
		name      string
		flags     []ipam.Pool
		committed map[string]raftstore.Pool
		drift     bool
	}{
		{"nothing anywhere", nil, nil, false},
		{"same", a, commit(a), false},
		{"range differs", a, commit(b), true},
		{"flags but nothing committed", a, nil, true},
		{"committed but no flags", nil, commit(a), true},
		{"auto-assign differs", a, commit(mustPools(t, "a=198.51.100.100-198.51.100.150;auto-assign=false")), true},
		{"interface differs", a, commit(mustPools(t, "a=198.51.100.100-198.51.100.150;interface=eth1")), true},
		{"same interface", mustPools(t, "a=198.51.100.100-198.51.100.150;interface=eth1"),
			commit(mustPools(t, "a=198.51.100.100-198.51.100.150;interface=eth1")), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := poolDrift(tc.flags, tc.committed)
			if (got != "") != tc.drift {
				t.Fatalf("poolDrift = %q, want drift %v", got, tc.drift)
			}
			if tc.drift && !strings.Contains(got, "leader's flags win") {
				t.Errorf("drift message %q does not say what wins", got)
			}
		})
	}
}
