package handoff

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/raftvip/raftvip/daemon/assign"
)

var (
	v1 = netip.MustParseAddr("198.51.100.101")
	v2 = netip.MustParseAddr("198.51.100.102")
	v6 = netip.MustParseAddr("2001:db8:100::101")
	t0 = time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
)

const wait = 330 * time.Millisecond

func move(v netip.Addr, from, to string) assign.Decision {
	return assign.Decision{VIP: v, Service: "ns/web", From: from, To: to, Reason: assign.ReasonOwnerDown}
}

func owner(node string, epoch uint64, releasing, released bool) Owner {
	return Owner{Node: node, Epoch: epoch, Service: "ns/web", Releasing: releasing, Released: released}
}

func downSet(nodes ...string) func(string) bool {
	return func(n string) bool {
		for _, d := range nodes {
			if d == n {
				return true
			}
		}
		return false
	}
}

// summary renders a plan as "release v from>to" and "commit v from>to (via)" lines,
// so a table row reads like the log it causes.
func summary(p Plan) string {
	var out []string
	for _, d := range p.Release {
		out = append(out, fmt.Sprintf("release %s %s>%s", d.VIP, d.From, d.To))
	}
	for _, c := range p.Commit {
		out = append(out, fmt.Sprintf("commit %s %s>%s (%s)", c.VIP, c.From, c.To, c.Via))
	}
	return strings.Join(out, "; ")
}

func TestNext(t *testing.T) {
	for _, tc := range []struct {
		name   string
		owners map[netip.Addr]Owner
		moves  []assign.Decision
		down   []string
		since  map[netip.Addr]time.Time
		now    time.Time
		want   string
	}{
		{name: "nothing to do", owners: map[netip.Addr]Owner{v1: owner("a", 1, false, false)}, now: t0, want: ""},
		{name: "first owner commits at once",
			moves: []assign.Decision{move(v1, "", "a")}, now: t0,
			want: "commit 198.51.100.101 >a (direct)"},
		{name: "first owner of a VIP with a stale record from empty From",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, false, false)},
			moves:  []assign.Decision{move(v1, "", "b")}, now: t0,
			want: "commit 198.51.100.101 >b (direct)"},
		{name: "withdrawal commits at once, the owner alive",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, false, false)},
			moves:  []assign.Decision{move(v1, "a", "")}, now: t0,
			want: "commit 198.51.100.101 a> (direct)"},
		{name: "withdrawal of a releasing VIP commits at once",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, true, false)},
			moves:  []assign.Decision{move(v1, "a", "")}, now: t0,
			want: "commit 198.51.100.101 a> (direct)"},
		{name: "planned move asks the owner to release first",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, false, false)},
			moves:  []assign.Decision{move(v1, "a", "b")}, now: t0,
			want: "release 198.51.100.101 a>b"},
		{name: "owner down moves at once",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, false, false)},
			moves:  []assign.Decision{move(v1, "a", "b")}, down: []string{"a"}, now: t0,
			want: "commit 198.51.100.101 a>b (owner down)"},
		{name: "the new owner being down changes nothing about the old one",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, false, false)},
			moves:  []assign.Decision{move(v1, "a", "b")}, down: []string{"b"}, now: t0,
			want: "release 198.51.100.101 a>b"},
		{name: "owner goes down while releasing: move at once",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, true, false)},
			moves:  []assign.Decision{move(v1, "a", "b")}, down: []string{"a"},
			since: map[netip.Addr]time.Time{v1: t0}, now: t0.Add(time.Millisecond),
			want: "commit 198.51.100.101 a>b (owner down)"},
		{name: "release pending, not confirmed, young: wait",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, true, false)},
			moves:  []assign.Decision{move(v1, "a", "b")},
			since:  map[netip.Addr]time.Time{v1: t0}, now: t0.Add(wait - time.Millisecond),
			want: ""},
		{name: "release confirmed: commit the new owner",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, true, true)},
			moves:  []assign.Decision{move(v1, "a", "b")},
			since:  map[netip.Addr]time.Time{v1: t0}, now: t0.Add(time.Millisecond),
			want: "commit 198.51.100.101 a>b (release confirmed)"},
		{name: "release confirmed, never seen pending by this leader: commit",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, true, true)},
			moves:  []assign.Decision{move(v1, "a", "b")}, now: t0,
			want: "commit 198.51.100.101 a>b (release confirmed)"},
		{name: "release exactly as old as the wait: commit",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, true, false)},
			moves:  []assign.Decision{move(v1, "a", "b")},
			since:  map[netip.Addr]time.Time{v1: t0}, now: t0.Add(wait),
			want: "commit 198.51.100.101 a>b (release older than the fence)"},
		{name: "release older than the wait: commit",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, true, false)},
			moves:  []assign.Decision{move(v1, "a", "b")},
			since:  map[netip.Addr]time.Time{v1: t0}, now: t0.Add(time.Hour),
			want: "commit 198.51.100.101 a>b (release older than the fence)"},
		{name: "release never seen before counts from now",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, true, false)},
			moves:  []assign.Decision{move(v1, "a", "b")}, now: t0,
			want: ""},
		{name: "the target changed while releasing: the release still counts",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, true, true)},
			moves:  []assign.Decision{move(v1, "a", "c")}, now: t0,
			want: "commit 198.51.100.101 a>c (release confirmed)"},
		{name: "assign read another owner than the record: nothing",
			owners: map[netip.Addr]Owner{v1: owner("c", 2, false, false)},
			moves:  []assign.Decision{move(v1, "a", "b")}, now: t0,
			want: ""},
		{name: "assign keeps a releasing owner: take the release back",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, true, false)},
			since:  map[netip.Addr]time.Time{v1: t0}, now: t0,
			want: "commit 198.51.100.101 a>a (release taken back)"},
		{name: "assign keeps an owner that already confirmed: take it back too",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, true, true)}, now: t0,
			want: "commit 198.51.100.101 a>a (release taken back)"},
		{name: "a dual-stack service moves both families in two phases together",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, false, false), v6: owner("a", 1, false, false)},
			moves:  []assign.Decision{move(v6, "a", "b"), move(v1, "a", "b")}, now: t0,
			want: "release 198.51.100.101 a>b; release 2001:db8:100::101 a>b"},
		{name: "one confirmed, one not: only the confirmed one moves",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, true, false), v2: owner("a", 4, true, true)},
			moves:  []assign.Decision{move(v2, "a", "b"), move(v1, "a", "b")},
			since:  map[netip.Addr]time.Time{v1: t0, v2: t0}, now: t0.Add(time.Millisecond),
			want: "commit 198.51.100.102 a>b (release confirmed)"},
		{name: "mixed: release, down, first owner, withdrawal, take back",
			owners: map[netip.Addr]Owner{v1: owner("a", 1, false, false), v2: owner("d", 1, false, false),
				v6: owner("c", 3, true, false)},
			moves: []assign.Decision{move(v1, "a", "b"), move(v2, "d", "b"), move(netip.MustParseAddr("198.51.100.103"), "", "a"),
				move(netip.MustParseAddr("198.51.100.104"), "x", "")},
			down: []string{"d"}, now: t0,
			want: "release 198.51.100.101 a>b; commit 198.51.100.102 d>b (owner down); commit 198.51.100.103 >a (direct); " +
				"commit 198.51.100.104 x> (direct); commit 2001:db8:100::101 c>c (release taken back)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Owners: tc.owners, Moves: tc.moves, Since: tc.since, Now: tc.now, Wait: wait}
			if tc.down != nil {
				in.Down = downSet(tc.down...)
			}
			if got := summary(Next(in)); got != tc.want {
				t.Errorf("plan:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestNextKeepsTheDecision(t *testing.T) {
	d := assign.Decision{VIP: v1, Service: "ns/a", SharedWith: []string{"ns/b"}, From: "x", To: "y", Reason: assign.ReasonExcluded}
	p := Next(Input{Owners: map[netip.Addr]Owner{v1: owner("x", 7, false, false)}, Moves: []assign.Decision{d}, Now: t0, Wait: wait})
	if len(p.Release) != 1 || !reflect.DeepEqual(p.Release[0], d) {
		t.Fatalf("release %+v, want the decision unchanged %+v", p.Release, d)
	}
	p = Next(Input{Owners: map[netip.Addr]Owner{v1: owner("x", 7, true, true)}, Moves: []assign.Decision{d}, Now: t0, Wait: wait})
	if len(p.Commit) != 1 || !reflect.DeepEqual(p.Commit[0].Decision, d) {
		t.Fatalf("commit %+v, want the decision unchanged %+v", p.Commit, d)
	}
}

func TestNextTakeBackKeepsTheService(t *testing.T) {
	o := Owner{Node: "x", Epoch: 2, Service: "ns/shared", Releasing: true}
	p := Next(Input{Owners: map[netip.Addr]Owner{v1: o}, Now: t0, Wait: wait})
	want := Commit{assign.Decision{VIP: v1, Service: "ns/shared", From: "x", To: "x", Reason: ReasonReleaseTakenBack}, ViaKept}
	if len(p.Commit) != 1 || !reflect.DeepEqual(p.Commit[0], want) {
		t.Fatalf("got %+v, want %+v", p.Commit, want)
	}
}

func TestNextNeverReleasesAndCommitsOneVIP(t *testing.T) {
	states := []Owner{owner("a", 1, false, false), owner("a", 1, true, false), owner("a", 1, true, true)}
	for _, o := range states {
		for _, down := range []bool{false, true} {
			for _, age := range []time.Duration{0, wait / 2, wait, 2 * wait} {
				for _, m := range []assign.Decision{move(v1, "a", "b"), move(v1, "a", ""), move(v1, "", "b")} {
					in := Input{Owners: map[netip.Addr]Owner{v1: o}, Moves: []assign.Decision{m},
						Since: map[netip.Addr]time.Time{v1: t0}, Now: t0.Add(age), Wait: wait}
					if down {
						in.Down = downSet("a")
					}
					p := Next(in)
					if len(p.Release)+len(p.Commit) > 1 {
						t.Errorf("owner %+v down %v age %s move %+v: %s", o, down, age, m, summary(p))
					}
					for _, c := range p.Commit {
						if c.From == "a" && c.To == "b" && !down && !o.Released && age < wait {
							t.Errorf("owner %+v age %s: new owner committed before the release was confirmed or old: %s", o, age, summary(p))
						}
					}
				}
			}
		}
	}
}

func TestTrackerObserve(t *testing.T) {
	var tr Tracker
	steps := []struct {
		name   string
		owners map[netip.Addr]Owner
		now    time.Time
		want   map[netip.Addr]time.Time
	}{
		{"nothing pending", map[netip.Addr]Owner{v1: owner("a", 1, false, false)}, t0, map[netip.Addr]time.Time{}},
		{"a release appears: seen now", map[netip.Addr]Owner{v1: owner("a", 1, true, false)}, t0.Add(time.Second),
			map[netip.Addr]time.Time{v1: t0.Add(time.Second)}},
		{"still pending: first sight kept", map[netip.Addr]Owner{v1: owner("a", 1, true, false), v2: owner("b", 1, true, false)}, t0.Add(2 * time.Second),
			map[netip.Addr]time.Time{v1: t0.Add(time.Second), v2: t0.Add(2 * time.Second)}},
		{"confirmed is still pending", map[netip.Addr]Owner{v1: owner("a", 1, true, true), v2: owner("b", 1, true, false)}, t0.Add(3 * time.Second),
			map[netip.Addr]time.Time{v1: t0.Add(time.Second), v2: t0.Add(2 * time.Second)}},
		{"a new epoch is a new release", map[netip.Addr]Owner{v1: owner("a", 2, true, false), v2: owner("b", 1, true, false)}, t0.Add(4 * time.Second),
			map[netip.Addr]time.Time{v1: t0.Add(4 * time.Second), v2: t0.Add(2 * time.Second)}},
		{"another node at the same epoch is a new release", map[netip.Addr]Owner{v1: owner("c", 2, true, false), v2: owner("b", 1, true, false)}, t0.Add(5 * time.Second),
			map[netip.Addr]time.Time{v1: t0.Add(5 * time.Second), v2: t0.Add(2 * time.Second)}},
		{"moved: forgotten", map[netip.Addr]Owner{v1: owner("d", 3, false, false), v2: owner("b", 1, true, false)}, t0.Add(6 * time.Second),
			map[netip.Addr]time.Time{v2: t0.Add(2 * time.Second)}},
		{"released again later: timed afresh", map[netip.Addr]Owner{v1: owner("d", 3, true, false)}, t0.Add(7 * time.Second),
			map[netip.Addr]time.Time{v1: t0.Add(7 * time.Second)}},
	}
	for _, s := range steps {
		if got := tr.Observe(s.owners, s.now); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: got %v, want %v", s.name, got, s.want)
		}
	}
	if len(tr.seen) != 1 {
		t.Errorf("tracker keeps %d releases, want only the one pending", len(tr.seen))
	}
}

// TestTrackerDrivesNext walks one planned move through the leader's passes: the
// release, passes that wait, and the commit once the wait is over.
func TestTrackerDrivesNext(t *testing.T) {
	var tr Tracker
	owners := map[netip.Addr]Owner{v1: owner("a", 1, false, false)}
	m := []assign.Decision{move(v1, "a", "b")}
	pass := func(now time.Time) string {
		return summary(Next(Input{Owners: owners, Moves: m, Since: tr.Observe(owners, now), Now: now, Wait: wait}))
	}
	if got := pass(t0); got != "release 198.51.100.101 a>b" {
		t.Fatalf("first pass: %q", got)
	}
	owners[v1] = owner("a", 1, true, false)
	for _, at := range []time.Duration{10 * time.Millisecond, wait / 2, wait + 5*time.Millisecond} {
		if got := pass(t0.Add(at)); got != "" {
			t.Fatalf("pass at +%s, %s after the release was first seen: %q, want nothing yet", at, at-10*time.Millisecond, got)
		}
	}
	if got := pass(t0.Add(wait + 10*time.Millisecond)); got != "commit 198.51.100.101 a>b (release older than the fence)" {
		t.Fatalf("pass after the wait: %q", got)
	}
}
