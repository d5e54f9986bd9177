package raftstore

import (
	"strings"
	"testing"
	"time"
)

func TestReleaseAndAckApply(t *testing.T) {
	const vip = "198.51.100.100"
	owned := func(o Owner) State {
		s := NewState()
		s.Owners[vip] = o
		s.Epochs[vip] = o.Epoch
		return s
	}
	base := Owner{VIP: vip, Node: "cp1", Epoch: 3, Service: "ns/web"}
	releasing := base
	releasing.Releasing = true
	released := releasing
	released.Released = true
	for _, tc := range []struct {
		name string
		from State
		cmds []Command
		want State
	}{
		{"release marks, keeps owner and epoch", owned(base), []Command{ReleaseOwner{VIP: vip}}, owned(releasing)},
		{"release of a VIP without owner is a no-op", NewState(), []Command{ReleaseOwner{VIP: vip}}, NewState()},
		{"ack by the owner at the epoch", owned(releasing), []Command{AckRelease{VIP: vip, Node: "cp1", Epoch: 3}}, owned(released)},
		{"ack without a release pending", owned(base), []Command{AckRelease{VIP: vip, Node: "cp1", Epoch: 3}}, owned(base)},
		{"ack by another node", owned(releasing), []Command{AckRelease{VIP: vip, Node: "cp2", Epoch: 3}}, owned(releasing)},
		{"ack for an older epoch", owned(releasing), []Command{AckRelease{VIP: vip, Node: "cp1", Epoch: 2}}, owned(releasing)},
		{"new owner clears both marks", owned(released), []Command{SetOwner{VIP: vip, Node: "cp2", Service: "ns/web"}},
			owned(Owner{VIP: vip, Node: "cp2", Epoch: 4, Service: "ns/web"})},
		{"ack after the move changes nothing", owned(released), []Command{SetOwner{VIP: vip, Node: "cp2"}, AckRelease{VIP: vip, Node: "cp1", Epoch: 3}},
			owned(Owner{VIP: vip, Node: "cp2", Epoch: 4})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFSM()
			f.state = tc.from.Clone()
			for i, c := range tc.cmds {
				if err := applyCmd(t, f, uint64(i+1), c); err != nil {
					t.Fatal(err)
				}
			}
			if got := f.State(); !statesEqual(got, tc.want) {
				t.Fatalf("state:\n got %+v\nwant %+v", got.Owners, tc.want.Owners)
			}
		})
	}
}

func TestReleaseCommandsValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Command
		want string
	}{
		{ReleaseOwner{VIP: "nope"}, "release_owner"},
		{AckRelease{VIP: "198.51.100.1"}, "empty node"},
		{AckRelease{VIP: "", Node: "cp1"}, "ack_release"},
	} {
		if _, err := Encode(tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Encode(%#v) = %v, want an error naming %q", tc.c, err, tc.want)
		}
	}
}

func TestAckReleaseIsForwardedOnlyAboutOneself(t *testing.T) {
	c := newCluster(t, 3, newTestCA(t, "cluster-ca"), DefaultTimeouts())
	leader := c.leader()
	f := follower(c, leader)
	const vip = "198.51.100.100"
	c.apply(SetOwner{VIP: vip, Node: f.id})
	c.apply(ReleaseOwner{VIP: vip})
	if err := f.Forward(ReleaseOwner{VIP: vip}, 5*time.Second); err == nil || !strings.Contains(err.Error(), "may not be forwarded") {
		t.Fatalf("follower forwarded a release: %v", err)
	}
	other := others(c, f)[0]
	if err := f.Forward(AckRelease{VIP: vip, Node: other.id, Epoch: 1}, 5*time.Second); err == nil || !strings.Contains(err.Error(), "certificate is for") {
		t.Fatalf("ack about another node: got %v, want refusal naming the certificate", err)
	}
	if err := f.Forward(AckRelease{VIP: vip, Node: f.id, Epoch: 1}, 5*time.Second); err != nil {
		t.Fatalf("own ack: %v", err)
	}
	waitFor(t, "the ack on every node", func() bool {
		for _, n := range c.running() {
			if o, _ := n.Owner(vip); !o.Released || o.Node != f.id {
				return false
			}
		}
		return true
	})
}

func TestAuthorizeForwarded(t *testing.T) {
	own := AckRelease{VIP: "198.51.100.1", Node: "w1", Epoch: 2}
	other := AckRelease{VIP: "198.51.100.2", Node: "w2", Epoch: 2}
	for _, tc := range []struct {
		name string
		peer string
		c    Command
		want string // "" means allowed
	}{
		{"own report", "w1", ReportNode{Node: NodeInfo{Name: "w1"}}, ""},
		{"someone else's report", "w1", ReportNode{Node: NodeInfo{Name: "w2"}}, `certificate is for "w1", report_node is about "w2"`},
		{"own ack", "w1", own, ""},
		{"someone else's ack", "w1", other, `certificate is for "w1", ack_release is about "w2"`},
		{"a batch of own acks", "w1", Batch{Commands: []Command{own, AckRelease{VIP: "198.51.100.3", Node: "w1", Epoch: 1}}}, ""},
		{"a batch with someone else's ack", "w1", Batch{Commands: []Command{own, other}}, `certificate is for "w1", ack_release is about "w2"`},
		{"a batch with an owner change", "w1", Batch{Commands: []Command{own, SetOwner{VIP: "198.51.100.1", Node: "w1"}}}, "only of ack_release, not of set_owner"},
		{"a batch with a report", "w1", Batch{Commands: []Command{ReportNode{Node: NodeInfo{Name: "w1"}}}}, "only of ack_release, not of report_node"},
		{"an empty batch", "w1", Batch{}, "empty batch"},
		{"a release", "w1", ReleaseOwner{VIP: "198.51.100.1"}, "release_owner may not be forwarded"},
		{"an owner change", "w1", SetOwner{VIP: "198.51.100.1", Node: "w1"}, "set_owner may not be forwarded"},
		{"insecure transport: anyone's ack", "", other, ""},
		{"insecure transport: still no owner change in a batch", "", Batch{Commands: []Command{other, RemoveOwner{VIP: "198.51.100.2"}}}, "not of remove_owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := authorize(tc.peer, tc.c)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want a refusal naming %q", err, tc.want)
			}
		})
	}
}

func TestAckBatchIsForwardedOnlyAboutOneself(t *testing.T) {
	c := newCluster(t, 3, newTestCA(t, "cluster-ca"), DefaultTimeouts())
	leader := c.leader()
	f := follower(c, leader)
	other := others(c, f)[0]
	vips := []string{"198.51.100.100", "198.51.100.101", "2001:db8:100::100"}
	for _, v := range vips {
		c.apply(SetOwner{VIP: v, Node: f.id})
		c.apply(ReleaseOwner{VIP: v})
	}
	mixed := Batch{Commands: []Command{AckRelease{VIP: vips[0], Node: f.id, Epoch: 1}, AckRelease{VIP: vips[1], Node: other.id, Epoch: 1}}}
	if err := f.Forward(mixed, 5*time.Second); err == nil || !strings.Contains(err.Error(), "certificate is for") {
		t.Fatalf("batch with another node's ack: got %v, want refusal naming the certificate", err)
	}
	if o, _ := leader.Owner(vips[0]); o.Released {
		t.Fatalf("a refused batch was partly applied: %+v", o)
	}
	var own Batch
	for _, v := range vips {
		own.Commands = append(own.Commands, AckRelease{VIP: v, Node: f.id, Epoch: 1})
	}
	if err := f.Forward(own, 5*time.Second); err != nil {
		t.Fatalf("own batch of acks: %v", err)
	}
	waitFor(t, "every ack on every node", func() bool {
		for _, n := range c.running() {
			for _, v := range vips {
				if o, _ := n.Owner(v); !o.Released || o.Node != f.id {
					return false
				}
			}
		}
		return true
	})
}
