package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/watchers"
)

func alloc(key string, ips ...string) raftstore.Allocation {
	return raftstore.Allocation{Service: key, UID: "uid-" + key, Pool: "main", IPs: ips}
}

func owner(vip, node, svc string) raftstore.Owner {
	return raftstore.Owner{VIP: vip, Node: node, Epoch: 1, Service: svc}
}

func stateWith(allocs []raftstore.Allocation, owners ...raftstore.Owner) raftstore.State {
	st := raftstore.NewState()
	for _, a := range allocs {
		st.Allocations[a.Service] = a
	}
	for _, o := range owners {
		st.Owners[o.VIP] = o
	}
	return st
}

func TestDesiredL2Status(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   raftstore.State
		want []watchers.L2Status
	}{
		{name: "nothing owned", st: stateWith([]raftstore.Allocation{alloc("a/web", "198.51.100.100")})},
		{
			name: "dual-stack service on one node, VIPs in address order",
			st: stateWith([]raftstore.Allocation{alloc("a/web", "2001:db8:100::100", "198.51.100.100")},
				owner("2001:db8:100::100", "node1", "a/web"), owner("198.51.100.100", "node1", "a/web")),
			want: []watchers.L2Status{{Node: "node1", Service: "a/web", VIPs: []string{"198.51.100.100", "2001:db8:100::100"}, Interfaces: []string{"eth0"}}},
		},
		{
			name: "a service split over two nodes gets one entry per node",
			st: stateWith([]raftstore.Allocation{alloc("a/web", "198.51.100.100", "2001:db8:100::100")},
				owner("198.51.100.100", "node1", "a/web"), owner("2001:db8:100::100", "node2", "a/web")),
			want: []watchers.L2Status{
				{Node: "node1", Service: "a/web", VIPs: []string{"198.51.100.100"}, Interfaces: []string{"eth0"}},
				{Node: "node2", Service: "a/web", VIPs: []string{"2001:db8:100::100"}, Interfaces: []string{"eth0"}},
			},
		},
		{
			name: "a shared VIP appears under every service sharing it",
			st: stateWith([]raftstore.Allocation{alloc("a/dns-tcp", "198.51.100.53"), alloc("a/dns-udp", "198.51.100.53")},
				owner("198.51.100.53", "node0", "a/dns-tcp")),
			want: []watchers.L2Status{
				{Node: "node0", Service: "a/dns-tcp", VIPs: []string{"198.51.100.53"}, Interfaces: []string{"eth0"}},
				{Node: "node0", Service: "a/dns-udp", VIPs: []string{"198.51.100.53"}, Interfaces: []string{"eth0"}},
			},
		},
		{
			name: "released allocation keeps its owner's service until the owner goes",
			st:   stateWith(nil, owner("198.51.100.100", "node2", "a/gone")),
			want: []watchers.L2Status{{Node: "node2", Service: "a/gone", VIPs: []string{"198.51.100.100"}, Interfaces: []string{"eth0"}}},
		},
		{
			name: "allocated but unowned VIPs are left out",
			st: stateWith([]raftstore.Allocation{alloc("a/web", "198.51.100.100", "198.51.100.101"), alloc("b/api", "198.51.100.102")},
				owner("198.51.100.101", "node3", "a/web")),
			want: []watchers.L2Status{{Node: "node3", Service: "a/web", VIPs: []string{"198.51.100.101"}, Interfaces: []string{"eth0"}}},
		},
		{
			name: "each node's own --interface from its report, the pool's interface where it has one",
			st: func() raftstore.State {
				vlan := alloc("a/vlan", "198.51.100.200")
				vlan.Pool = "vlan"
				st := stateWith([]raftstore.Allocation{alloc("a/web", "198.51.100.100"), vlan},
					owner("198.51.100.100", "node1", "a/web"), owner("198.51.100.200", "node1", "a/vlan"))
				st.Pools["vlan"] = raftstore.Pool{Name: "vlan", Interface: "vlan30"}
				st.Nodes["node1"] = raftstore.NodeInfo{Name: "node1", Interfaces: []raftstore.LinkState{{Name: "ens3", Up: true, Default: true}, {Name: "vlan30", Up: true}}}
				return st
			}(),
			want: []watchers.L2Status{
				{Node: "node1", Service: "a/vlan", VIPs: []string{"198.51.100.200"}, Interfaces: []string{"vlan30"}},
				{Node: "node1", Service: "a/web", VIPs: []string{"198.51.100.100"}, Interfaces: []string{"ens3"}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := desiredL2Status(tc.st, "eth0")
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("desiredL2Status =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestDesiredL2StatusIsOrderIndependent(t *testing.T) {
	var allocs []raftstore.Allocation
	var owners []raftstore.Owner
	for i := range 50 {
		ip := fmt.Sprintf("198.51.100.%d", 100+i)
		key := fmt.Sprintf("ns/svc%02d", i%7)
		allocs = append(allocs, alloc(fmt.Sprintf("ns/own%02d", i), ip))
		owners = append(owners, owner(ip, fmt.Sprintf("node%d", i%4), key))
	}
	first := desiredL2Status(stateWith(allocs, owners...), "eth0")
	for range 20 {
		if got := desiredL2Status(stateWith(allocs, owners...), "eth0"); !reflect.DeepEqual(got, first) {
			t.Fatal("desiredL2Status depends on map iteration order")
		}
	}
	if !sort.SliceIsSorted(first, func(i, j int) bool { return first[i].Key() < first[j].Key() }) {
		t.Error("entries not sorted by node and service")
	}
}

func obj(name string, st watchers.L2Status, ownerUID types.UID) watchers.L2StatusObject {
	return watchers.L2StatusObject{Name: name, L2Status: st, Labels: watchers.L2StatusLabels(st), OwnerUID: ownerUID}
}

func TestPlanL2Status(t *testing.T) {
	web1 := watchers.L2Status{Node: "node1", Service: "a/web", VIPs: []string{"198.51.100.100"}, Interfaces: []string{"eth0"}}
	web2 := watchers.L2Status{Node: "node2", Service: "a/web", VIPs: []string{"198.51.100.100"}, Interfaces: []string{"eth0"}}
	api1 := watchers.L2Status{Node: "node1", Service: "a/api", VIPs: []string{"198.51.100.101"}, Interfaces: []string{"eth0"}}
	api1More := api1
	api1More.VIPs = []string{"198.51.100.101", "2001:db8:100::101"}
	pods := map[string]watchers.PodRef{
		"node1": {Name: "raftvip-node1", UID: "p1"},
		"node2": {Name: "raftvip-node2", UID: "p2"},
		"node3": {Name: "raftvip-node3"},
	}
	relabelled := obj("node1-l", api1, "p1")
	relabelled.Labels = map[string]string{watchers.LabelNode: "node1"}

	for _, tc := range []struct {
		name                      string
		want                      []watchers.L2Status
		have                      []watchers.L2StatusObject
		creates, updates, deletes []string // keys for creates and updates, names for deletes
		ownerOf                   map[string]types.UID
	}{
		{name: "in sync", want: []watchers.L2Status{web1, api1}, have: []watchers.L2StatusObject{obj("node1-a", web1, "p1"), obj("node1-b", api1, "p1")}},
		{name: "first pass creates with owners", want: []watchers.L2Status{web1, api1},
			creates: []string{web1.Key(), api1.Key()}, ownerOf: map[string]types.UID{web1.Key(): "p1", api1.Key(): "p1"}},
		{name: "a move deletes the old node's object and creates the new one", want: []watchers.L2Status{web2},
			have: []watchers.L2StatusObject{obj("node1-a", web1, "p1")}, creates: []string{web2.Key()}, deletes: []string{"node1-a"},
			ownerOf: map[string]types.UID{web2.Key(): "p2"}},
		{name: "more VIPs update in place", want: []watchers.L2Status{api1More},
			have: []watchers.L2StatusObject{obj("node1-b", api1, "p1")}, updates: []string{api1.Key()}},
		{name: "nothing owned deletes everything", have: []watchers.L2StatusObject{obj("node1-a", web1, "p1"), obj("node2-c", web2, "p2")},
			deletes: []string{"node1-a", "node2-c"}},
		{name: "duplicates keep the first by name", want: []watchers.L2Status{web1},
			have: []watchers.L2StatusObject{obj("node1-a", web1, "p1"), obj("node1-z", web1, "p1")}, deletes: []string{"node1-z"}},
		{name: "unreadable objects go", want: []watchers.L2Status{web1},
			have: []watchers.L2StatusObject{obj("node1-a", web1, "p1"), {Name: "node1-junk"}}, deletes: []string{"node1-junk"}},
		{name: "missing labels are restored", want: []watchers.L2Status{api1}, have: []watchers.L2StatusObject{relabelled}, updates: []string{api1.Key()}},
		{name: "an object of a recreated pod gets the new owner", want: []watchers.L2Status{web1},
			have: []watchers.L2StatusObject{obj("node1-a", web1, "old")}, updates: []string{web1.Key()}, ownerOf: map[string]types.UID{web1.Key(): "p1"}},
		{name: "an unowned object is adopted once its pod exists", want: []watchers.L2Status{web1},
			have: []watchers.L2StatusObject{obj("node1-a", web1, "")}, updates: []string{web1.Key()}},
		{name: "without a pod the object is created unowned", want: []watchers.L2Status{{Node: "node3", Service: "a/web", VIPs: []string{"198.51.100.100"}}},
			creates: []string{"node3 a/web"}, ownerOf: map[string]types.UID{"node3 a/web": ""}},
		{name: "without a pod an existing owner is left for the garbage collector",
			want: []watchers.L2Status{{Node: "node3", Service: "a/web", VIPs: []string{"198.51.100.100"}}},
			have: []watchers.L2StatusObject{obj("node3-a", watchers.L2Status{Node: "node3", Service: "a/web", VIPs: []string{"198.51.100.100"}}, "deleted-pod")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := planL2Status(tc.want, tc.have, pods)
			var creates, updates, deletes []string
			for _, c := range p.creates {
				creates = append(creates, c.want.Key())
				if want, ok := tc.ownerOf[c.want.Key()]; ok && c.owner.UID != want {
					t.Errorf("create %s with owner %q, want %q", c.want.Key(), c.owner.UID, want)
				}
			}
			for _, u := range p.updates {
				updates = append(updates, u.want.Key())
				if u.obj.Key() != u.want.Key() {
					t.Errorf("update of %s writes %s", u.obj.Key(), u.want.Key())
				}
				if want, ok := tc.ownerOf[u.want.Key()]; ok && u.owner.UID != want {
					t.Errorf("update %s with owner %q, want %q", u.want.Key(), u.owner.UID, want)
				}
			}
			for _, d := range p.deletes {
				deletes = append(deletes, d.Name)
			}
			if !slices.Equal(creates, tc.creates) || !slices.Equal(updates, tc.updates) || !slices.Equal(deletes, tc.deletes) {
				t.Errorf("plan creates %v updates %v deletes %v\nwant creates %v updates %v deletes %v",
					creates, updates, deletes, tc.creates, tc.updates, tc.deletes)
			}
			if p.empty() != (len(tc.creates)+len(tc.updates)+len(tc.deletes) == 0) {
				t.Errorf("empty() = %v", p.empty())
			}
		})
	}
}

// memStore is an in-memory l2StatusStore.
type memStore struct {
	mu      sync.Mutex
	objs    map[string]watchers.L2StatusObject
	pods    map[string]types.UID
	next    int
	writes  int
	listErr error
	podErr  error
	onWrite func() // runs after each write, outside the lock
	changes chan struct{}
}

func newMemStore() *memStore {
	return &memStore{objs: map[string]watchers.L2StatusObject{}, pods: map[string]types.UID{}, changes: make(chan struct{}, 1)}
}

// WatchChanges is signalled by podReplaced.
func (m *memStore) WatchChanges(context.Context) <-chan struct{} { return m.changes }

// podReplaced gives a mirror pod a new UID and signals it, as a recreated pod does.
func (m *memStore) podReplaced(name string, uid types.UID) {
	m.set(func(m *memStore) { m.pods[name] = uid })
	m.changes <- struct{}{}
}

func (m *memStore) List(context.Context) ([]watchers.L2StatusObject, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.listErr != nil {
		return nil, m.listErr
	}
	var out []watchers.L2StatusObject
	for _, o := range m.objs {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b watchers.L2StatusObject) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (m *memStore) Pod(_ context.Context, name string) (watchers.PodRef, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return watchers.PodRef{Name: name, UID: m.pods[name]}, m.podErr
}

func (m *memStore) Create(_ context.Context, st watchers.L2Status, owner watchers.PodRef) (string, error) {
	defer m.wrote()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	m.writes++
	name := fmt.Sprintf("%s-%05d", st.Node, m.next)
	m.objs[name] = obj(name, st, owner.UID)
	return name, nil
}

func (m *memStore) Update(_ context.Context, o watchers.L2StatusObject, st watchers.L2Status, owner watchers.PodRef) error {
	defer m.wrote()
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.objs[o.Name]
	if !ok {
		return errors.New("not found")
	}
	m.writes++
	uid := cur.OwnerUID
	if owner.UID != "" {
		uid = owner.UID
	}
	m.objs[o.Name] = obj(o.Name, st, uid)
	return nil
}

func (m *memStore) Delete(_ context.Context, o watchers.L2StatusObject) error {
	defer m.wrote()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	delete(m.objs, o.Name)
	return nil
}

func (m *memStore) wrote() {
	m.mu.Lock()
	f := m.onWrite
	m.mu.Unlock()
	if f != nil {
		f()
	}
}

// summary is the store's content as sorted "node service vips owner" lines.
func (m *memStore) summary() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, o := range m.objs {
		out = append(out, fmt.Sprintf("%s %s %s %s", o.Node, o.Service, strings.Join(o.VIPs, ","), o.OwnerUID))
	}
	slices.Sort(out)
	return out
}

func (m *memStore) writeCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writes
}

func (m *memStore) set(f func(m *memStore)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m)
}

func startL2Sync(t *testing.T, node *fakeRaft, store *memStore, resync time.Duration) *l2StatusSync {
	t.Helper()
	cfg := &Parsed{Config: Config{NodeName: "node0", PodName: "my-own-pod", Interface: "eth0"}}
	s := newL2StatusSync(node, store, cfg, slog.New(slog.DiscardHandler))
	s.resync = resync
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func waitSummary(t *testing.T, store *memStore, want ...string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := store.summary()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ServiceL2Status objects:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestL2StatusSyncFollowsOwners(t *testing.T) {
	node := newFakeRaft(true)
	store := newMemStore()
	store.pods["raftvip-node1"] = "p1"
	store.pods["my-own-pod"] = "p0"
	node.seed(t, raftstore.Allocate{Allocation: alloc("a/web", "198.51.100.100", "2001:db8:100::100")})
	node.seed(t, raftstore.Allocate{Allocation: alloc("a/api", "198.51.100.101")})
	node.seed(t, raftstore.Batch{Commands: []raftstore.Command{
		raftstore.SetOwner{VIP: "198.51.100.100", Node: "node1", Service: "a/web"},
		raftstore.SetOwner{VIP: "2001:db8:100::100", Node: "node1", Service: "a/web"},
		raftstore.SetOwner{VIP: "198.51.100.101", Node: "node0", Service: "a/api"},
	}})
	startL2Sync(t, node, store, time.Hour)
	waitSummary(t, store, "node1 a/web 198.51.100.100,2001:db8:100::100 p1", "node0 a/api 198.51.100.101 p0")

	// A move: node2 has no pod, so its object is unowned.
	node.seed(t, raftstore.Batch{Commands: []raftstore.Command{
		raftstore.SetOwner{VIP: "198.51.100.100", Node: "node2", Service: "a/web"},
		raftstore.SetOwner{VIP: "2001:db8:100::100", Node: "node2", Service: "a/web"},
	}})
	waitSummary(t, store, "node2 a/web 198.51.100.100,2001:db8:100::100 ", "node0 a/api 198.51.100.101 p0")

	// The service goes away.
	node.seed(t, raftstore.Release{Service: "a/api"})
	node.seed(t, raftstore.RemoveOwner{VIP: "198.51.100.101"})
	waitSummary(t, store, "node2 a/web 198.51.100.100,2001:db8:100::100 ")

	// An FSM change that does not touch owners writes nothing.
	before := store.writeCount()
	node.seed(t, raftstore.ReportNode{Node: raftstore.NodeInfo{Name: "node2", Role: raftstore.RoleVoter}})
	time.Sleep(3 * leaderPoll)
	if n := store.writeCount(); n != before {
		t.Errorf("%d writes after an FSM change unrelated to owners", n-before)
	}
}

func TestL2StatusSyncOnlyWhileLeader(t *testing.T) {
	node := newFakeRaft(false)
	store := newMemStore()
	node.seed(t, raftstore.Allocate{Allocation: alloc("a/web", "198.51.100.100")})
	node.seed(t, raftstore.SetOwner{VIP: "198.51.100.100", Node: "node1", Service: "a/web"})
	startL2Sync(t, node, store, time.Hour)
	time.Sleep(3 * leaderPoll)
	if n := store.writeCount(); n != 0 {
		t.Fatalf("a follower made %d writes", n)
	}
	node.setLeader(true)
	waitSummary(t, store, "node1 a/web 198.51.100.100 ")

	// Someone deletes the object while another node leads; gaining leadership again
	// resyncs at once (the resync period here is an hour).
	node.setLeader(false)
	time.Sleep(2 * leaderPoll)
	store.set(func(m *memStore) { m.objs = map[string]watchers.L2StatusObject{} })
	node.setLeader(true)
	waitSummary(t, store, "node1 a/web 198.51.100.100 ")
}

func TestL2StatusSyncResyncRepairsAndAdopts(t *testing.T) {
	node := newFakeRaft(true)
	store := newMemStore()
	node.seed(t, raftstore.Allocate{Allocation: alloc("a/web", "198.51.100.100")})
	node.seed(t, raftstore.SetOwner{VIP: "198.51.100.100", Node: "node1", Service: "a/web"})
	startL2Sync(t, node, store, 100*time.Millisecond)
	waitSummary(t, store, "node1 a/web 198.51.100.100 ")

	// The pod appears (the kubelet created the mirror pod late): the next resync
	// adds the owner reference. A stray object is removed.
	store.set(func(m *memStore) {
		m.pods["raftvip-node1"] = "p1"
		m.objs["node9-stray"] = obj("node9-stray", watchers.L2Status{Node: "node9", Service: "a/old", VIPs: []string{"198.51.100.9"}}, "")
	})
	waitSummary(t, store, "node1 a/web 198.51.100.100 p1")
}

func TestL2StatusSyncRetriesFailures(t *testing.T) {
	node := newFakeRaft(true)
	store := newMemStore()
	store.listErr = errors.New("the server could not find the requested resource")
	node.seed(t, raftstore.Allocate{Allocation: alloc("a/web", "198.51.100.100")})
	node.seed(t, raftstore.SetOwner{VIP: "198.51.100.100", Node: "node1", Service: "a/web"})
	startL2Sync(t, node, store, time.Hour)
	time.Sleep(3 * leaderPoll)
	if n := store.writeCount(); n != 0 {
		t.Fatalf("%d writes while listing fails", n)
	}
	// The CRD gets installed: the retry (after the backoff) succeeds.
	store.set(func(m *memStore) { m.listErr = nil; m.podErr = errors.New("forbidden") })
	time.Sleep(l2StatusRetryMin + 2*leaderPoll)
	if n := store.writeCount(); n != 0 {
		t.Fatalf("%d writes while pod lookups fail", n)
	}
	store.set(func(m *memStore) { m.podErr = nil })
	waitSummary(t, store, "node1 a/web 198.51.100.100 ")
}

func TestL2StatusPodName(t *testing.T) {
	s := newL2StatusSync(newFakeRaft(true), newMemStore(), &Parsed{Config: Config{NodeName: "cp-1", PodName: "custom"}}, slog.New(slog.DiscardHandler))
	if got := s.podName("cp-1"); got != "custom" {
		t.Errorf("own pod %q, want --pod-name custom", got)
	}
	if got := s.podName("worker-7"); got != "raftvip-worker-7" {
		t.Errorf("other node's pod %q, want raftvip-worker-7", got)
	}
}

func TestL2StatusApplyStopsWhenLeadershipIsLost(t *testing.T) {
	node := newFakeRaft(true)
	store := newMemStore()
	store.onWrite = func() { node.setLeader(false) }
	s := newL2StatusSync(node, store, &Parsed{Config: Config{NodeName: "node0", Interface: "eth0"}}, slog.New(slog.DiscardHandler))
	var want []watchers.L2Status
	for i := range 3 * l2StatusWriters {
		want = append(want, watchers.L2Status{Node: "node1", Service: fmt.Sprintf("a/s%03d", i), VIPs: []string{"198.51.100.1"}})
	}
	err := s.sync(context.Background(), want)
	if !errors.Is(err, errLostLeadership) {
		t.Fatalf("sync = %v, want errLostLeadership", err)
	}
	if n := store.writeCount(); n == 0 || n > l2StatusWriters {
		t.Errorf("%d writes after leadership was lost at the first, want at most one round of %d", n, l2StatusWriters)
	}
}

func TestL2StatusHint(t *testing.T) {
	gr := schema.GroupResource{Group: "raftvip.io", Resource: "servicel2statuses"}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("list: %w", apierrors.NewNotFound(gr, "")), "apply docs/crd-servicel2status.yaml"},
		{fmt.Errorf("3 of 4 writes failed, first: %w", apierrors.NewForbidden(gr, "x", errors.New("no"))), "apply docs/rbac.yaml in the --namespace of the agents"},
		{errors.New("connection refused"), ""},
	} {
		if got := hint(tc.err); got != tc.want {
			t.Errorf("hint(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestL2StatusSyncRepointsAtOnceWhenThePodIsReplaced: a mirror pod recreated with
// a new UID re-points the owner references on the change signal, with a resync
// of an hour that cannot be what did it.
func TestL2StatusSyncRepointsAtOnceWhenThePodIsReplaced(t *testing.T) {
	node := newFakeRaft(true)
	store := newMemStore()
	store.pods["raftvip-node1"] = "p1"
	node.seed(t, raftstore.Allocate{Allocation: alloc("a/web", "198.51.100.100")})
	node.seed(t, raftstore.SetOwner{VIP: "198.51.100.100", Node: "node1", Service: "a/web"})
	startL2Sync(t, node, store, time.Hour)
	waitSummary(t, store, "node1 a/web 198.51.100.100 p1")
	store.podReplaced("raftvip-node1", "p1-new")
	waitSummary(t, store, "node1 a/web 198.51.100.100 p1-new")
}
