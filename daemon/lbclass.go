package daemon

import (
	"fmt"
	"slices"
	"strings"

	"github.com/raftvip/raftvip/raftstore"
)

// lbClassPlan is what the leader does about the committed loadBalancerClass.
type lbClassPlan struct {
	commit bool   // commit this node's --lb-class
	drift  string // why this node's flag is not (or not yet) what is served; "" when it is
}

// planLBClass decides whether the leader commits its --lb-class. The committed class
// wins over any one voter's flag, because a leader serving another class would
// release every allocation of the committed one and clear their status. So when
// nothing is committed the leader commits its flag once a majority of the voters
// (itself included) reported it and none reported another class: a lone voter with
// a stray flag cannot win the first election and impose it. Later the class changes
// only once every voter reports the new one (the operator changed the flag
// everywhere). Until then the leader keeps serving the committed class and reports
// the drift.
func planLBClass(flag string, committed *string, voters []string, nodes map[string]raftstore.NodeInfo) lbClassPlan {
	if committed != nil && *committed == flag {
		return lbClassPlan{}
	}
	var agree, differ []string
	for _, v := range voters {
		n, ok := nodes[v]
		switch {
		case ok && n.LBClass != nil && *n.LBClass == flag:
			agree = append(agree, v)
		case ok && n.LBClass != nil:
			differ = append(differ, fmt.Sprintf("%s=%q", v, *n.LBClass))
		}
	}
	slices.Sort(differ)
	if committed == nil {
		if len(differ) == 0 {
			return lbClassPlan{commit: len(agree) > len(voters)/2}
		}
		return lbClassPlan{drift: fmt.Sprintf("voters disagree on --lb-class (this node %q, %s); no class is committed and Services wait until they agree",
			flag, strings.Join(differ, ", "))}
	}
	if len(agree) == len(voters) && len(voters) > 0 {
		return lbClassPlan{commit: true}
	}
	return lbClassPlan{drift: lbClassDrift(flag, committed)}
}

// lbClassDrift says how this node's --lb-class differs from the committed class, or
// "" when it matches or nothing is committed yet.
func lbClassDrift(flag string, committed *string) string {
	if committed == nil || *committed == flag {
		return ""
	}
	return fmt.Sprintf("this node's --lb-class %q differs from the committed class %q; the committed class is served until every voter's --lb-class is %q",
		flag, *committed, flag)
}
