// Package assign decides which node announces each service VIP (L2 mode: exactly one
// node per VIP).
//
// It is pure and deterministic: no I/O, no Kubernetes types, no clocks, no randomness,
// and no dependence on input order or map iteration, so any leader given the same
// services, nodes and current owners makes the same decisions, and a new leader
// changes nothing that did not need changing.
//
// The rules:
//
//   - A node may announce a Service when it is healthy, not excluded
//     (node.kubernetes.io/exclude-from-external-load-balancers), has the
//     interface of the Service's pool up (a node that reported no links gets the
//     benefit of the doubt), and, for
//     externalTrafficPolicy Local, holds a usable endpoint of it. A Cluster Service
//     with no usable endpoint anywhere is announced nowhere: attracting traffic that
//     will be dropped helps nobody.
//   - All VIPs of a Service move together: both families of a dual-stack Service sit on
//     one node, so clients of either address see the same failover at the same time.
//     Services sharing a VIP (raftvip.io/allow-shared-ip) are tied the same way, since
//     one address has one announcer; such a group goes to a node that can serve the
//     most of its Services.
//   - The current owner keeps a group while it stays eligible (sticky), even if that
//     leaves nodes unbalanced: moving a VIP costs a failover's worth of lost packets,
//     an imbalance costs nothing until the node fails.
//   - Other groups, larger first, go to the eligible node announcing the fewest VIPs so
//     far (sticky ones counted first). Ties are broken by rendezvous hashing of the
//     group's lowest VIP and the node name, so equal nodes do not all attract the
//     lowest-named node's share and every leader agrees.
//   - A group with no eligible node is withdrawn (To "").
package assign

import (
	"net/netip"
	"slices"
	"strings"
)

// Node is what the leader knows about one node for announcing purposes.
type Node struct {
	Name     string
	Healthy  bool // reporting to the leader within the node-down timeout
	Excluded bool // labelled node.kubernetes.io/exclude-from-external-load-balancers
	// Links is the node's last reported link state per interface, "" for its
	// --interface (DefaultLink). Nil means it reported none: every link counts as up.
	Links map[string]bool
}

// DefaultLink is the Links key, and the Service.Interface, of each node's own
// --interface: the pools without an interface of their own.
const DefaultLink = ""

// LinkUp reports whether n can announce on iface: the node reported no links at
// all (not yet, or BGP mode), or it reported iface and it is up. A node that
// reported links but not iface does not have it.
func (n Node) LinkUp(iface string) bool {
	if n.Links == nil {
		return true
	}
	return n.Links[iface]
}

// Service is the announcing view of one LoadBalancer Service, built by the watcher from
// the Service and its EndpointSlices.
type Service struct {
	Key               string       // namespace/name
	VIPs              []netip.Addr // its allocated addresses
	LocalTraffic      bool         // externalTrafficPolicy: Local
	EndpointNodes     []string     // nodes with a usable endpoint; what Local reads
	HasUsableEndpoint bool         // any usable endpoint anywhere; what Cluster reads
	// Interface is the link its pool's VIPs go on; DefaultLink for --interface.
	Interface string
}

// Owner is the FSM's record of who announces a VIP; Epoch grows on every move.
type Owner struct {
	Node  string
	Epoch uint64
}

// Current is the FSM's owner table, the stickiness input of Assign.
type Current map[netip.Addr]Owner

// Decision is one owner change for the leader to apply through Raft and report as an
// Event. Service is the lowest key announcing the VIP; SharedWith lists the others
// when Services share it, so each can get its Event.
type Decision struct {
	VIP        netip.Addr
	Service    string
	SharedWith []string
	From, To   string // "" means no owner
	Reason     string
}

// Reasons a Decision carries.
const (
	ReasonInitial          = "initial"
	ReasonOwnerDown        = "owner down"
	ReasonLinkDown         = "owner's interface of the pool is down"
	ReasonExcluded         = "excluded"
	ReasonNoLocalEndpoint  = "owner no longer has local endpoint"
	ReasonFollowsService   = "follows the other VIPs of its service"
	ReasonSharedElsewhere  = "another node can serve more of the services sharing the VIP"
	ReasonNoUsableEndpoint = "no usable endpoint"
	ReasonNoEligibleNode   = "no eligible node"
	ReasonServiceRemoved   = "service removed"
)

// Eligible lists, sorted, the nodes that may announce svc: healthy, not excluded,
// with svc's interface up, and for Local traffic holding a usable endpoint; none
// for a Cluster Service without a usable endpoint. A name listed more than once
// counts as healthy only if every entry is, as excluded if any entry is, and
// takes the links of its last entry that has any.
func Eligible(svc Service, nodes []Node) []string {
	return slices.Clone(newTable(nodes).eligible(svc))
}

// table is the node list digested once per Assign call.
type table struct {
	nodes map[string]Node
	ready []string // healthy and not excluded, sorted
	// readyOn is ready narrowed to the nodes with an interface up, per interface,
	// filled as Services ask: every Cluster Service's answer.
	readyOn map[string][]string
}

func newTable(nodes []Node) *table {
	t := &table{nodes: make(map[string]Node, len(nodes)), readyOn: map[string][]string{}}
	for _, n := range nodes {
		if prev, ok := t.nodes[n.Name]; ok {
			n.Healthy = n.Healthy && prev.Healthy
			n.Excluded = n.Excluded || prev.Excluded
			if n.Links == nil {
				n.Links = prev.Links
			}
		}
		t.nodes[n.Name] = n
	}
	for name, n := range t.nodes {
		if n.Healthy && !n.Excluded {
			t.ready = append(t.ready, name)
		}
	}
	slices.Sort(t.ready)
	return t
}

// readyFor is ready narrowed to the nodes with iface up, sorted; read only.
func (t *table) readyFor(iface string) []string {
	if out, ok := t.readyOn[iface]; ok {
		return out
	}
	out := make([]string, 0, len(t.ready))
	for _, name := range t.ready {
		if t.nodes[name].LinkUp(iface) {
			out = append(out, name)
		}
	}
	t.readyOn[iface] = out
	return out
}

// eligible is Eligible on a digested table. The result may alias t.readyOn: read only.
func (t *table) eligible(svc Service) []string {
	if !svc.LocalTraffic {
		if !svc.HasUsableEndpoint {
			return nil
		}
		return t.readyFor(svc.Interface)
	}
	var out []string
	for _, name := range svc.EndpointNodes {
		if n, ok := t.nodes[name]; ok && n.Healthy && !n.Excluded && n.LinkUp(svc.Interface) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// group is a set of Services tied together by shared VIPs, announced by one node.
type group struct {
	members []Service    // sorted by key
	vips    []netip.Addr // sorted; vips[0] is the group's hashing key
	elig    []string     // nodes serving the most members, sorted
	target  string
}

// Assign decides the owner of every VIP of every Service and returns only the
// changes, sorted by VIP. VIPs in current that no Service holds any more lose their
// owner. See the package comment for the rules.
func Assign(services []Service, nodes []Node, current Current) []Decision {
	table := newTable(nodes)
	groups := groupServices(services)
	load := map[string]int{}
	var fresh []*group
	for _, g := range groups {
		g.elig = groupEligible(g, table)
		if len(g.elig) == 0 {
			continue
		}
		if g.target = g.sticky(current); g.target != "" {
			load[g.target] += len(g.vips)
		} else {
			fresh = append(fresh, g)
		}
	}
	slices.SortStableFunc(fresh, func(a, b *group) int { return len(b.vips) - len(a.vips) })
	for _, g := range fresh {
		g.target = leastLoaded(g, load)
		load[g.target] += len(g.vips)
	}

	var out []Decision
	held := map[netip.Addr]bool{}
	for _, g := range groups {
		for _, vip := range g.vips {
			held[vip] = true
			from := current[vip].Node
			if from == g.target {
				continue
			}
			d := Decision{VIP: vip, From: from, To: g.target, Reason: g.reason(from, table)}
			d.Service, d.SharedWith = g.holders(vip)
			out = append(out, d)
		}
	}
	for vip, o := range current {
		if !held[vip] && o.Node != "" {
			out = append(out, Decision{VIP: vip, From: o.Node, Reason: ReasonServiceRemoved})
		}
	}
	slices.SortFunc(out, func(a, b Decision) int { return a.VIP.Compare(b.VIP) })
	return out
}

// groupServices joins Services that share a VIP (union-find over VIPs) and returns the
// groups sorted by lowest VIP. Services without valid VIPs are dropped.
func groupServices(services []Service) []*group {
	parent := make([]int, len(services))
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	firstHolder := map[netip.Addr]int{}
	for i, s := range services {
		parent[i] = i
		for _, vip := range s.VIPs {
			if !vip.IsValid() {
				continue
			}
			if j, ok := firstHolder[vip]; ok {
				parent[find(i)] = find(j)
			} else {
				firstHolder[vip] = i
			}
		}
	}
	byRoot := map[int]*group{}
	var groups []*group
	for i, s := range services {
		if !slices.ContainsFunc(s.VIPs, netip.Addr.IsValid) {
			continue
		}
		r := find(i)
		g := byRoot[r]
		if g == nil {
			g = &group{}
			byRoot[r] = g
			groups = append(groups, g)
		}
		g.members = append(g.members, s)
		for _, vip := range s.VIPs {
			if vip.IsValid() {
				g.vips = append(g.vips, vip)
			}
		}
	}
	for _, g := range groups {
		slices.SortFunc(g.members, func(a, b Service) int { return strings.Compare(a.Key, b.Key) })
		slices.SortFunc(g.vips, netip.Addr.Compare)
		g.vips = slices.Compact(g.vips)
	}
	slices.SortFunc(groups, func(a, b *group) int { return a.vips[0].Compare(b.vips[0]) })
	return groups
}

// groupEligible returns the nodes eligible for the most members. For a lone Service
// that is just Eligible; for Services sharing a VIP it is their common nodes when
// they have any, else the nodes serving as many of them as possible.
func groupEligible(g *group, table *table) []string {
	if len(g.members) == 1 {
		return table.eligible(g.members[0])
	}
	score := map[string]int{}
	best := 0
	for _, s := range g.members {
		for _, n := range table.eligible(s) {
			score[n]++
			best = max(best, score[n])
		}
	}
	var out []string
	for n, c := range score {
		if c == best {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// sticky returns the current owner to keep: among the group's current owners that are
// still eligible, the one owning most of its VIPs, ties by rendezvous weight.
func (g *group) sticky(current Current) string {
	best, bestN := "", 0
	for _, vip := range g.vips {
		n := current[vip].Node
		if n == "" || n == best {
			continue
		}
		if _, ok := slices.BinarySearch(g.elig, n); !ok {
			continue
		}
		c := 0
		for _, v := range g.vips {
			if current[v].Node == n {
				c++
			}
		}
		if c > bestN || c == bestN && g.prefers(n, best) {
			best, bestN = n, c
		}
	}
	return best
}

// leastLoaded returns the eligible node with the lowest load, ties by rendezvous
// weight (computed only for the tied nodes).
func leastLoaded(g *group, load map[string]int) string {
	low := load[g.elig[0]]
	for _, n := range g.elig[1:] {
		low = min(low, load[n])
	}
	best, bestW := "", uint64(0)
	for _, n := range g.elig {
		if load[n] != low {
			continue
		}
		if w := weight(g.vips[0], n); best == "" || w > bestW {
			best, bestW = n, w
		}
	}
	return best
}

// prefers reports whether node a outranks node b for this group by rendezvous weight.
func (g *group) prefers(a, b string) bool {
	wa, wb := weight(g.vips[0], a), weight(g.vips[0], b)
	return wa > wb || wa == wb && a < b
}

// holders names the member Services announcing vip: the lowest key, then the others.
func (g *group) holders(vip netip.Addr) (string, []string) {
	var keys []string
	for _, s := range g.members {
		if slices.Contains(s.VIPs, vip) {
			keys = append(keys, s.Key)
		}
	}
	keys = slices.Compact(keys)
	if len(keys) == 1 {
		return keys[0], nil
	}
	return keys[0], keys[1:]
}

// reason explains why the VIP leaves from (or gets its first owner).
func (g *group) reason(from string, table *table) string {
	if g.target == "" {
		for _, s := range g.members {
			if s.LocalTraffic && len(s.EndpointNodes) > 0 || !s.LocalTraffic && s.HasUsableEndpoint {
				return ReasonNoEligibleNode
			}
		}
		return ReasonNoUsableEndpoint
	}
	if from == "" {
		return ReasonInitial
	}
	n, ok := table.nodes[from]
	switch {
	case !ok || !n.Healthy:
		return ReasonOwnerDown
	case n.Excluded:
		return ReasonExcluded
	}
	for _, s := range g.members {
		if !n.LinkUp(s.Interface) {
			return ReasonLinkDown
		}
	}
	if _, ok := slices.BinarySearch(g.elig, from); ok {
		return ReasonFollowsService
	}
	for _, s := range g.members {
		if slices.Contains(table.eligible(s), from) {
			return ReasonSharedElsewhere
		}
	}
	return ReasonNoLocalEndpoint
}

// weight is the rendezvous (highest-random-weight) score of node for vip: FNV-1a 64
// over the 16-byte address (fixed length, so it cannot run into the name) and the
// node name, finished with the splitmix64 mixer so similar names spread evenly. Both
// are fixed algorithms, not Go's hash/maphash, so every leader on every Go version
// computes the same value.
func weight(vip netip.Addr, node string) uint64 {
	b := vip.As16()
	return mix64(fnv1a(fnv1a(fnvOffset, b[:]...), []byte(node)...))
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnv1a(h uint64, data ...byte) uint64 {
	for _, c := range data {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return h
}

// mix64 is the splitmix64 finalizer.
func mix64(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
