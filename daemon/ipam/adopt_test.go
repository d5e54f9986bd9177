package ipam

import (
	"slices"
	"testing"
	"time"
)

func TestAdoptStatusIPs(t *testing.T) {
	pools := mustPools(t, "a=10.0.0.0/24,2001:db8:1::/120", "b=10.0.1.0/24;auto-assign=false")
	held := Allocation{Service: "ns/old", Pool: "a", IPs: addrs("10.0.0.50")}
	cases := []struct {
		name     string
		status   []string
		pool     string
		pol      Policy
		fams     []Family
		want     []string
		conflict string
	}{
		{name: "free address in a pool is adopted", status: []string{"10.0.0.77"}, want: []string{"10.0.0.77"}},
		{name: "pool without auto-assign still adopts", status: []string{"10.0.1.9"}, want: []string{"10.0.1.9"}},
		{name: "outside every pool gets a fresh address", status: []string{"192.0.2.1"}, want: []string{"10.0.0.1"}},
		{name: "held by another service is a conflict", status: []string{"10.0.0.50"}, want: []string{"10.0.0.1"}, conflict: "ns/old"},
		{name: "named pool mismatch is not adopted", status: []string{"10.0.1.9"}, pool: "a", want: []string{"10.0.0.1"}},
		{name: "dual-stack pair adopted", status: []string{"2001:db8:1::9", "10.0.0.9"}, pol: PreferDualStack, fams: []Family{V4, V6},
			want: []string{"10.0.0.9", "2001:db8:1::9"}},
		{name: "dual-stack gains the missing family from the same pool", status: []string{"10.0.0.9"}, pol: RequireDualStack, fams: []Family{V4, V6},
			want: []string{"10.0.0.9", "2001:db8:1::1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fams := c.fams
			if fams == nil {
				fams = []Family{V4}
			}
			r := req("ns/s", c.pol, fams...)
			r.StatusIPs, r.Pool = addrs(c.status...), c.pool
			res := Allocate(pools, NewUsed([]Allocation{held}), r, nil)
			if res.Err != nil {
				t.Fatalf("err %v", res.Err)
			}
			if got := res.Allocation.IPs; !slices.Equal(got, addrs(c.want...)) {
				t.Fatalf("ips %v, want %v (reason %q)", got, c.want, res.Reason)
			}
			switch {
			case c.conflict == "" && len(res.Conflicts) > 0:
				t.Fatalf("unexpected conflicts %v", res.Conflicts)
			case c.conflict != "" && (len(res.Conflicts) != 1 || res.Conflicts[0].Holder != c.conflict):
				t.Fatalf("conflicts %v, want holder %s", res.Conflicts, c.conflict)
			}
		})
	}
}

func TestReservedAddressesSkipped(t *testing.T) {
	pools := mustPools(t, "a=10.0.0.0/30")
	u := NewUsed(nil)
	u.Reserve("ns/wants", addrs("10.0.0.1"))
	res := Allocate(pools, u, req("ns/auto", SingleStack, V4), nil)
	if !slices.Equal(res.Allocation.IPs, addrs("10.0.0.2")) {
		t.Fatalf("auto got %v, want 10.0.0.2", res.Allocation.IPs)
	}
	res = Allocate(pools, u, withIPs(req("ns/wants", SingleStack, V4), "10.0.0.1"), nil)
	if !slices.Equal(res.Allocation.IPs, addrs("10.0.0.1")) {
		t.Fatalf("requester got %v, want 10.0.0.1", res.Allocation.IPs)
	}
}

func TestCompareOrder(t *testing.T) {
	t0 := time.Unix(1000, 0)
	reqs := []Request{
		{Service: "ns/auto", Created: t0},
		{Service: "ns/young", StatusIPs: addrs("10.0.0.1"), Created: t0.Add(time.Hour)},
		{Service: "ns/old", StatusIPs: addrs("10.0.0.1"), Created: t0},
		{Service: "ns/want", RequestedIPs: addrs("10.0.0.2"), Created: t0.Add(2 * time.Hour)},
	}
	slices.SortFunc(reqs, func(x, y Request) int { return Compare(&x, &y) })
	var got []string
	for _, r := range reqs {
		got = append(got, r.Service)
	}
	if want := []string{"ns/want", "ns/old", "ns/young", "ns/auto"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// BenchmarkAdopt1000 decides 1000 Services that show addresses in status (a
// migration, or a restore of lost Raft state) against 1000 without: adopting must
// cost no more than allocating fresh.
func BenchmarkAdopt1000(b *testing.B) {
	pools := mustPools(b, "a=10.0.0.0/16")
	for _, adopt := range []bool{true, false} {
		reqs := make([]Request, 1000)
		for i := range reqs {
			reqs[i] = req("ns/s"+string(rune('a'+i%26))+itoa(i), SingleStack, V4)
			if adopt {
				// From the top of the pool down, so lowest-first would give others.
				reqs[i].StatusIPs = addrs("10.0." + itoa(255-i/200) + "." + itoa(200-i%200))
			}
		}
		name := map[bool]string{true: "adopt", false: "fresh"}[adopt]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				u := NewUsed(nil)
				for _, r := range reqs {
					res := Allocate(pools, u, r, nil)
					if res.Err != nil || adopt && res.Allocation.IPs[0] != r.StatusIPs[0] {
						b.Fatalf("%s: %v %v", r.Service, res.Allocation.IPs, res.Err)
					}
					u.Add(res.Allocation)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/1000svc")
		})
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
