package raftstore

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// A rolling upgrade runs nodes of two releases side by side. A node that meets
// a log entry it cannot decode halts (halt.go) instead of diverging, so the
// leader must never write what one of the members cannot decode: every node
// reports the features it can apply (NodeInfo.Commands, and the Commands of
// every forwarded request, which old leaders ignore), and the leader uses a new
// command type or field only once every member reports it. Members, not only
// voters: a worker applies the same log and announces from it, and a worker
// that halted would keep its VIPs assigned while it announces none. A member
// that reports nothing runs a release from before the reports and supports
// exactly BaselineFeatures.

// FeatureNodeCommands is the NodeInfo.Commands field itself: the release before
// it decodes node reports strictly and rejects a report that carries it.
const FeatureNodeCommands = "report_node.commands"

// FeatureNodeInterfaces is the NodeInfo.Interfaces field, which v0.1.0 rejects
// the same way.
const FeatureNodeInterfaces = "report_node.interfaces"

// FeaturePoolInterface is the Pool.Interface field of set_pools (a pool's own
// interface, --pool NAME=RANGES;interface=IFACE): v0.1.0 rejects pools that
// carry it, so the leader keeps the committed pools until every member can
// apply it.
const FeaturePoolInterface = "set_pools.interface"

// BaselineFeatures is what v0.1.0 (commit 4e456fa), the release before feature
// reports, can apply: command types 1 to 12 with the fields of that release.
func BaselineFeatures() []string {
	var out []string
	for t := TypeSetPools; t <= TypeAckRelease; t++ {
		out = append(out, t.String())
	}
	return out
}

// Supported is every feature this binary can apply, sorted: what it reports.
func Supported() []string {
	out := append(BaselineFeatures(), TypeClusterID.String(), FeatureNodeCommands, FeatureNodeInterfaces, FeaturePoolInterface)
	slices.Sort(out)
	return out
}

// requiredFeatures names the features a node needs to apply c. Batches need
// what their commands need.
func requiredFeatures(c Command) []string {
	out := []string{c.Type().String()}
	switch c := c.(type) {
	case ReportNode:
		if c.Node.Commands != nil {
			out = append(out, FeatureNodeCommands)
		}
		if c.Node.Interfaces != nil {
			out = append(out, FeatureNodeInterfaces)
		}
		if poolsHaveInterface(c.Node.Pools) {
			out = append(out, FeaturePoolInterface)
		}
	case SetPools:
		if poolsHaveInterface(c.Pools) {
			out = append(out, FeaturePoolInterface)
		}
	case Batch:
		for _, sub := range c.Commands {
			out = append(out, requiredFeatures(sub)...)
		}
	}
	return out
}

// poolsHaveInterface reports whether any pool carries the gated Interface field.
func poolsHaveInterface(pools []Pool) bool {
	return slices.ContainsFunc(pools, func(p Pool) bool { return p.Interface != "" })
}

// featureGate is the gate's pure decision: which members cannot apply feature.
// known holds what each node reported; a member absent from it (or with an empty
// report) counts as BaselineFeatures. An empty result means the leader may use
// the feature.
func featureGate(feature string, members []string, known map[string][]string) []string {
	var missing []string
	for _, v := range members {
		have := known[v]
		if len(have) == 0 {
			have = BaselineFeatures()
		}
		if !slices.Contains(have, feature) {
			missing = append(missing, v)
		}
	}
	return missing
}

// capabilities is what the leader heard nodes report in forwarded requests; it
// lets the leader learn a node's features before the NodeInfo.Commands field
// may be committed, and survives nothing: a new leader hears reports again.
type capabilities struct {
	mu    sync.Mutex
	heard map[string][]string
}

// note records what node said it supports; an empty list is an old binary's
// silence (BaselineFeatures), so a node downgraded in place loses its features.
func (c *capabilities) note(node string, features []string) {
	if node == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.heard == nil {
		c.heard = make(map[string][]string)
	}
	c.heard[node] = append([]string{}, features...)
}

// known merges the committed reports with what was heard; heard wins, being
// newer than any commit of a node that has restarted since.
func (c *capabilities) known(committed map[string][]string, self string) map[string][]string {
	out := make(map[string][]string, len(committed)+1)
	maps.Copy(out, committed)
	c.mu.Lock()
	for name, f := range c.heard {
		out[name] = f
	}
	c.mu.Unlock()
	out[self] = Supported()
	return out
}

// ErrFeatureGated refuses a command that some member could not apply yet.
var ErrFeatureGated = errors.New("not every member can apply it yet")

// Gated reports whether the leader must not use feature yet, and which members
// lack it; a follower answers for its own view of the reports.
func (n *Node) Gated(feature string) (bool, []string) {
	missing := featureGate(feature, n.memberIDs(), n.caps.known(n.fsm.nodeCommands(), n.id))
	return len(missing) > 0, missing
}

// gate makes c safe to write: it drops the NodeInfo fields some member cannot
// decode (the leader then works from InterfaceUp alone, as v0.1.0 did), and
// refuses a command type some member cannot apply.
func (n *Node) gate(c Command) (Command, error) {
	members := n.memberIDs()
	known := n.caps.known(n.fsm.nodeCommands(), n.id)
	if r, ok := c.(ReportNode); ok {
		shut := func(feature string) bool { return len(featureGate(feature, members, known)) > 0 }
		if shut(FeatureNodeCommands) {
			r.Node.Commands = nil
		}
		if shut(FeatureNodeInterfaces) {
			r.Node.Interfaces = nil
		}
		if poolsHaveInterface(r.Node.Pools) && shut(FeaturePoolInterface) {
			// The report's pools are only compared with the committed ones
			// (drift), which cannot carry interfaces either while the gate is shut.
			pools := make([]Pool, len(r.Node.Pools))
			for i, p := range r.Node.Pools {
				p.Interface = ""
				pools[i] = p
			}
			r.Node.Pools = pools
		}
		c = r
	}
	for _, f := range requiredFeatures(c) {
		if missing := featureGate(f, members, known); len(missing) > 0 {
			return nil, fmt.Errorf("%s needs %s, which members %v do not report: %w", c.Type(), f, missing, ErrFeatureGated)
		}
	}
	return c, nil
}

// memberIDs lists the members (voters and nonvoters) of the latest
// configuration; none when it cannot be read, which opens no gate the
// configuration would keep shut only on a leader that is stopping anyway.
func (n *Node) memberIDs() []string {
	servers, err := n.Servers()
	if err != nil {
		return nil
	}
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = s.ID
	}
	return out
}
