package bgprouter

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// View maps each prefix to the neighbors holding a path for it: what a test
// waits for (Await) without caring about the paths' attributes.
type View map[netip.Prefix][]netip.Addr

// ViewOf builds the view of a path list, each prefix's neighbors sorted.
func ViewOf(paths []Path) View {
	v := View{}
	for _, p := range paths {
		v[p.Prefix] = append(v[p.Prefix], p.Neighbor)
	}
	for k := range v {
		slices.SortFunc(v[k], netip.Addr.Compare)
	}
	return v
}

// Matches reports whether v holds exactly the wanted neighbors for every
// prefix in want (an empty list: the prefix is absent). Prefixes not in want
// are not checked.
func (v View) Matches(want View) bool {
	for p, ns := range want {
		sorted := slices.SortedFunc(slices.Values(ns), netip.Addr.Compare)
		if !slices.Equal(v[p], sorted) {
			return false
		}
	}
	return true
}

// String summarizes a view for failure messages, ordered by prefix.
func (v View) String() string {
	var b strings.Builder
	for _, p := range slices.SortedFunc(maps.Keys(v), func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }) {
		fmt.Fprintf(&b, "%s<-%v ", p, v[p])
	}
	return strings.TrimSpace(b.String())
}
