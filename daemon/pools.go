package daemon

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/raftvip/raftvip/daemon/ipam"
	"github.com/raftvip/raftvip/raftstore"
)

// committedPools is the replicated form of parsed --pool flags: ranges normalised to
// what the allocator hands out, sorted by name, so equal configurations compare equal.
func committedPools(ps []ipam.Pool) []raftstore.Pool {
	out := make([]raftstore.Pool, 0, len(ps))
	for _, p := range ps {
		rp := raftstore.Pool{Name: p.Name, AutoAssign: p.AutoAssign, Interface: p.Interface}
		for _, r := range p.Ranges {
			rp.Ranges = append(rp.Ranges, r.String())
		}
		out = append(out, rp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// poolsFromState turns the committed pools back into allocator pools. The ranges are
// already normalised, so network/broadcast trimming must not run a second time.
func poolsFromState(committed map[string]raftstore.Pool) ([]ipam.Pool, error) {
	var flags []string
	for _, p := range committed {
		flag := fmt.Sprintf("%s=%s;auto-assign=%t;include-network-broadcast=true",
			p.Name, strings.Join(p.Ranges, ","), p.AutoAssign)
		if p.Interface != "" {
			flag += ";interface=" + p.Interface
		}
		flags = append(flags, flag)
	}
	sort.Strings(flags)
	pools, err := ipam.ParsePools(flags)
	if err != nil {
		return nil, fmt.Errorf("committed pools: %w", err)
	}
	return pools, nil
}

// poolDrift says how this node's --pool flags differ from the committed pools, or ""
// when they match. The leader's flags win; a difference means the operator changed
// the flags on some nodes only.
func poolDrift(flags []ipam.Pool, committed map[string]raftstore.Pool) string {
	mine := committedPools(flags)
	var theirs []raftstore.Pool
	for _, p := range committed {
		theirs = append(theirs, p)
	}
	sort.Slice(theirs, func(i, j int) bool { return theirs[i].Name < theirs[j].Name })
	equal := slices.EqualFunc(mine, theirs, func(a, b raftstore.Pool) bool {
		return a.Name == b.Name && a.AutoAssign == b.AutoAssign && a.Interface == b.Interface && slices.Equal(a.Ranges, b.Ranges)
	})
	if equal {
		return ""
	}
	return fmt.Sprintf("this node's --pool flags (%s) differ from the committed pools (%s); the leader's flags win",
		describePools(mine), describePools(theirs))
}

func describePools(ps []raftstore.Pool) string {
	if len(ps) == 0 {
		return "none"
	}
	var parts []string
	for _, p := range ps {
		part := p.Name + "=" + strings.Join(p.Ranges, ",")
		if p.Interface != "" {
			part += ";interface=" + p.Interface
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, " ")
}
