package bgprouter

import (
	"net/netip"
	"slices"
	"testing"
)

var (
	n1 = netip.MustParseAddr("198.51.100.11")
	n2 = netip.MustParseAddr("198.51.100.12")
	n3 = netip.MustParseAddr("2001:db8:100::13")
	p4 = netip.MustParsePrefix("198.51.100.100/32")
	p6 = netip.MustParsePrefix("2001:db8:100::100/128")
)

func TestViewOf(t *testing.T) {
	v := ViewOf([]Path{
		{Prefix: p6, Neighbor: n3},
		{Prefix: p4, Neighbor: n2},
		{Prefix: p6, Neighbor: n1},
		{Prefix: p4, Neighbor: n1},
	})
	if len(v) != 2 {
		t.Fatalf("ViewOf = %v, want two prefixes", v)
	}
	if got := v[p4]; !slices.Equal(got, []netip.Addr{n1, n2}) {
		t.Errorf("%s <- %v, want [%s %s] (sorted)", p4, got, n1, n2)
	}
	if got := v[p6]; !slices.Equal(got, []netip.Addr{n1, n3}) {
		t.Errorf("%s <- %v, want [%s %s] (sorted)", p6, got, n1, n3)
	}
	if got := ViewOf(nil); len(got) != 0 {
		t.Errorf("ViewOf(nil) = %v, want empty", got)
	}
}

func TestViewMatches(t *testing.T) {
	have := View{p4: {n1, n2}, p6: {n3}}
	tests := []struct {
		name string
		want View
		ok   bool
	}{
		{"exact", View{p4: {n1, n2}, p6: {n3}}, true},
		{"want in any order", View{p4: {n2, n1}}, true},
		{"prefixes not wanted are not checked", View{p6: {n3}}, true},
		{"nothing wanted", View{}, true},
		{"a neighbor too few", View{p4: {n1}}, false},
		{"a neighbor too many", View{p4: {n1, n2, n3}}, false},
		{"another neighbor", View{p6: {n1}}, false},
		{"present prefix wanted absent", View{p6: nil}, false},
		{"absent prefix wanted absent", View{netip.MustParsePrefix("198.51.100.101/32"): nil}, true},
		{"absent prefix wanted absent (empty list)", View{netip.MustParsePrefix("198.51.100.101/32"): {}}, true},
		{"absent prefix wanted present", View{netip.MustParsePrefix("198.51.100.101/32"): {n1}}, false},
	}
	for _, tt := range tests {
		if got := have.Matches(tt.want); got != tt.ok {
			t.Errorf("%s: %v.Matches(%v) = %v, want %v", tt.name, have, tt.want, got, tt.ok)
		}
	}
}

func TestViewString(t *testing.T) {
	v := View{p6: {n3}, p4: {n1, n2}}
	want := "198.51.100.100/32<-[198.51.100.11 198.51.100.12] 2001:db8:100::100/128<-[2001:db8:100::13]"
	if got := v.String(); got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got := (View{}).String(); got != "" {
		t.Errorf("empty view String = %q, want \"\"", got)
	}
}
