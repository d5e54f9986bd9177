package daemon

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
)

func TestReleaseAcks(t *testing.T) {
	st := raftstore.State{Owners: map[string]raftstore.Owner{
		"198.51.100.120":    {VIP: "198.51.100.120", Node: "n1", Epoch: 3, Releasing: true},
		"198.51.100.9":      {VIP: "198.51.100.9", Node: "n1", Epoch: 1, Releasing: true},
		"2001:db8:100::120": {VIP: "2001:db8:100::120", Node: "n1", Epoch: 2, Releasing: true},
		"198.51.100.121":    {VIP: "198.51.100.121", Node: "n1", Epoch: 4, Releasing: true, Released: true},
		"198.51.100.122":    {VIP: "198.51.100.122", Node: "n1", Epoch: 1},
		"198.51.100.123":    {VIP: "198.51.100.123", Node: "n2", Epoch: 7, Releasing: true},
		"not-an-ip":         {VIP: "not-an-ip", Node: "n1", Epoch: 1, Releasing: true},
	}}
	ack := func(v string, e uint64) raftstore.AckRelease {
		return raftstore.AckRelease{VIP: v, Node: "n1", Epoch: e}
	}
	for _, tc := range []struct {
		name string
		self string
		held []string
		want []raftstore.AckRelease
	}{
		{"every unconfirmed release of mine, sorted by address", "n1", nil,
			[]raftstore.AckRelease{ack("198.51.100.9", 1), ack("198.51.100.120", 3), ack("2001:db8:100::120", 2)}},
		{"an address still on the interface is not confirmed", "n1", []string{"198.51.100.120", "198.51.100.122"},
			[]raftstore.AckRelease{ack("198.51.100.9", 1), ack("2001:db8:100::120", 2)}},
		{"another node's release is not mine to confirm", "n3", nil, nil},
		{"n2 confirms its own", "n2", nil, []raftstore.AckRelease{{VIP: "198.51.100.123", Node: "n2", Epoch: 7}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var held []netip.Addr
			for _, h := range tc.held {
				held = append(held, netip.MustParseAddr(h))
			}
			if got := releaseAcks(tc.self, st, held); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("releaseAcks =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestAckerDue(t *testing.T) {
	now := time.Now()
	a1 := raftstore.AckRelease{VIP: "198.51.100.1", Node: "n1", Epoch: 1}
	a2 := raftstore.AckRelease{VIP: "198.51.100.2", Node: "n1", Epoch: 1}
	a2next := raftstore.AckRelease{VIP: "198.51.100.2", Node: "n1", Epoch: 2}
	var a acker
	steps := []struct {
		name string
		owed []raftstore.AckRelease
		at   time.Duration
		want []raftstore.AckRelease
	}{
		{"first sight: send", []raftstore.AckRelease{a1}, 0, []raftstore.AckRelease{a1}},
		{"just sent: wait", []raftstore.AckRelease{a1}, ackRetry / 2, nil},
		{"a new one is sent at once, the old one still waits", []raftstore.AckRelease{a1, a2}, ackRetry - time.Millisecond, []raftstore.AckRelease{a2}},
		{"unconfirmed after the retry interval: send again", []raftstore.AckRelease{a1, a2}, ackRetry, []raftstore.AckRelease{a1}},
		{"a1 confirmed, a2 moved on to a new release: send that", []raftstore.AckRelease{a2next}, ackRetry + time.Millisecond, []raftstore.AckRelease{a2next}},
		{"owed again later: a forgotten ack counts as new", []raftstore.AckRelease{a1}, ackRetry + 2*time.Millisecond, []raftstore.AckRelease{a1}},
	}
	for _, s := range steps {
		if got := a.due(s.owed, now.Add(s.at)); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: due = %+v, want %+v", s.name, got, s.want)
		}
	}
	if len(a.sent) != 1 {
		t.Errorf("acker remembers %d acks, want only the one owed", len(a.sent))
	}
}

func TestAckCommand(t *testing.T) {
	one := raftstore.AckRelease{VIP: "198.51.100.1", Node: "n1", Epoch: 1}
	if got := ackCommand([]raftstore.AckRelease{one}); got != one {
		t.Errorf("one ack: %+v, want it alone", got)
	}
	var many []raftstore.AckRelease
	for i := range 100 {
		many = append(many, raftstore.AckRelease{VIP: fmt.Sprintf("198.51.100.%d", i+1), Node: "n1", Epoch: 1})
	}
	b, ok := ackCommand(many).(raftstore.Batch)
	if !ok || len(b.Commands) != len(many) || b.Commands[99] != many[99] {
		t.Fatalf("100 acks: %+v, want one batch of them all", b)
	}
	// One entry, within the forwarding size bound.
	data, err := raftstore.Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 64<<10 {
		t.Errorf("a batch of 100 acks encodes to %d bytes, over the 64 KiB forwarding bound", len(data))
	}
	if !strings.Contains(string(data), "198.51.100.100") {
		t.Errorf("encoded batch misses an ack")
	}
}
