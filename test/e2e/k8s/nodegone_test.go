package k8s

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/raftvip/raftvip/raftstore"
)

// TestDeletedNodeRemovesItsMember: three voters, each with its Node object. One
// follower's machine dies (SIGKILL); the other follower's Node is deleted first:
// removing that live voter would leave one live voter of two, so it stays and
// the leader says why. Then the dead follower's Node is deleted: it is removed,
// and with it gone the first one's removal keeps quorum and follows. The leader
// ends as the only voter, with a log line for each step.
func TestDeletedNodeRemovesItsMember(t *testing.T) {
	e := startControlPlane(t)
	for i := range voters {
		e.cp.CreateNode(t, e.nodeNameOf(i), e.l.NodeIP(i).String())
	}
	e.startAgents(t, nil)
	leader := e.leader(t)
	var followers []*agent
	for _, a := range e.agents {
		if a != leader {
			followers = append(followers, a)
		}
	}
	live, dead := followers[0], followers[1]
	poll(t, "three voters", func() bool { return len(voterIDs(leader)) == 3 })
	dead.kill()

	deleteNode(t, e, live.name)
	poll(t, "the leader to keep "+live.name+" and say why", func() bool {
		return logHas(leader, "a member whose Kubernetes Node was deleted stays", "removing "+live.name+" leaves 1 live of 2 voters")
	})
	if got := voterIDs(leader); len(got) != 3 {
		t.Fatalf("removing a live voter while another is dead would lose quorum, yet the voters are %v", got)
	}

	deleteNode(t, e, dead.name)
	poll(t, "both members removed", func() bool {
		return slices.Equal(voterIDs(leader), []string{leader.name})
	})
	if !logHas(leader, "removed a member whose Kubernetes Node was deleted", `"node":"`+dead.name+`"`) ||
		!logHas(leader, "removed a member whose Kubernetes Node was deleted", `"node":"`+live.name+`"`) {
		t.Fatalf("the leader's log does not name both removals:\n%s", tail(leader.logPath, 30))
	}
	st, err := leader.state(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{live.name, dead.name} {
		if _, ok := st.Nodes[gone]; ok {
			t.Fatalf("the replicated state still has %s's node report", gone)
		}
	}
	if n, err := leader.metric(context.Background(), "raftvip_members_removed_node_deleted_total", ""); err != nil || n != 2 {
		t.Fatalf("raftvip_members_removed_node_deleted_total = %v (%v), want 2", n, err)
	}
}

// nodeNameOf is the node name startAgents gives agent i.
func (e *env) nodeNameOf(i int) string { return fmt.Sprintf("node%d", i) }

// deleteNode deletes the Node object name.
func deleteNode(t *testing.T, e *env, name string) {
	t.Helper()
	if err := e.client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete Node %s: %v", name, err)
	}
}

// voterIDs lists, sorted, the voters in a's configuration; nil when a does not answer.
func voterIDs(a *agent) []string {
	st, err := a.status(context.Background())
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range st.Servers {
		if s.Suffrage == raftstore.SuffrageVoter {
			out = append(out, s.ID)
		}
	}
	slices.Sort(out)
	return out
}

// logHas reports whether one line of a's log holds every part.
func logHas(a *agent, parts ...string) bool {
	b, _ := os.ReadFile(a.logPath)
	for _, l := range strings.Split(string(b), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}
