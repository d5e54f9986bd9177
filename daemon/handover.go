package daemon

import (
	"sort"

	"github.com/raftvip/raftvip/raftstore"
)

// handoverTarget decides whether the leader should hand leadership (and with it the
// control-plane VIP) to another voter because its own kube-apiserver is down. It is a
// pure function of the replicated state so every leader decides alike:
//   - before any API server has ever been healthy (bootstrap) the leader keeps the VIP;
//   - a leader whose API server is healthy keeps it;
//   - otherwise the first (by name) other voter whose API server is healthy gets it;
//   - no healthy voter anywhere: keep it, moving would not help clients.
func handoverTarget(self string, st raftstore.State, voters []string) (string, bool) {
	if !st.APIServerEverHealthy {
		return "", false
	}
	if me, ok := st.Nodes[self]; ok && me.APIServerHealthy {
		return "", false
	}
	candidates := append([]string(nil), voters...)
	sort.Strings(candidates)
	for _, v := range candidates {
		if v == self {
			continue
		}
		if n, ok := st.Nodes[v]; ok && n.APIServerHealthy && !n.Draining {
			return v, true
		}
	}
	return "", false
}
