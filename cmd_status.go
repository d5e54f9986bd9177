package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/raftvip/raftvip/daemon"
	"github.com/raftvip/raftvip/raftstore"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show a node's Raft status; exits 1 when the node knows no leader",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "http://127.0.0.1:7951", Usage: "base URL of the node's status server", EnvVars: []string{envName("status-url")}},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "table or json"},
			&cli.DurationFlag{Name: "timeout", Value: 3 * time.Second, Usage: "how long to wait for the status server"},
		},
		Action: func(c *cli.Context) error {
			out := c.String("output")
			if out != "table" && out != "json" {
				return &exitError{code: 2, err: fmt.Errorf("--output %q: want table or json", out)}
			}
			url := strings.TrimSuffix(c.String("addr"), "/") + "/raft/status"
			client := &http.Client{Timeout: c.Duration("timeout")}
			resp, err := client.Get(url)
			if err != nil {
				return &exitError{code: 3, err: fmt.Errorf("--addr %q: %w", c.String("addr"), err)}
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return &exitError{code: 3, err: fmt.Errorf("read %s: %w", url, err)}
			}
			if resp.StatusCode != http.StatusOK {
				return &exitError{code: 3, err: fmt.Errorf("%s: %s", url, resp.Status)}
			}
			var st daemon.RaftStatus
			if err := json.Unmarshal(body, &st); err != nil {
				return &exitError{code: 3, err: fmt.Errorf("%s: not a raftvip status: %w", url, err)}
			}
			if out == "json" {
				c.App.Writer.Write(body)
			} else {
				printStatus(c.App.Writer, st)
			}
			if st.Leader.ID == "" {
				return &exitError{code: 1, err: fmt.Errorf("node %s knows no leader (state %s)", st.Node, st.State)}
			}
			return nil
		},
	}
}

func printStatus(w io.Writer, st daemon.RaftStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	leader := st.Leader.ID
	if leader == "" {
		leader = "(none)"
	} else {
		leader += " " + st.Leader.Address
	}
	clusterID := st.ClusterID
	if clusterID == "" {
		clusterID = "(none)"
	}
	fmt.Fprintf(tw, "cluster id:\t%s\n", clusterID)
	fmt.Fprintf(tw, "node:\t%s\n", st.Node)
	fmt.Fprintf(tw, "state:\t%s\n", st.State)
	if st.Halted != nil {
		fmt.Fprintf(tw, "HALTED:\t%s (upgrade this node's binary; it announces nothing)\n", st.Halted)
	}
	fmt.Fprintf(tw, "leader:\t%s\n", leader)
	fmt.Fprintf(tw, "term:\t%d\n", st.Term)
	fmt.Fprintf(tw, "log index (last/commit/applied):\t%d / %d / %d\n", st.LastLogIndex, st.CommitIndex, st.AppliedIndex)
	fmt.Fprintf(tw, "last contact:\t%d ms\n", st.LastContactMs)
	if len(st.ControlPlaneVIPs) > 0 {
		fmt.Fprintf(tw, "control-plane VIPs:\t%s\n", strings.Join(st.ControlPlaneVIPs, ", "))
	}
	held := "(none)"
	if len(st.HeldVIPs) > 0 {
		held = strings.Join(st.HeldVIPs, ", ")
	}
	fmt.Fprintf(tw, "VIPs held here:\t%s\n", held)
	if st.APIServerHealthy != nil {
		fmt.Fprintf(tw, "local kube-apiserver:\t%s\n", map[bool]string{true: "healthy", false: "UNHEALTHY"}[*st.APIServerHealthy])
	}
	if c := st.Certificate; c != nil {
		fmt.Fprintf(tw, "peer certificate:\t%s\n", certLine(*c, time.Now()))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tADDRESS\tSUFFRAGE\tROLE\tLAST CONTACT")
	for _, s := range st.Servers {
		role := ""
		if s.ID == st.Leader.ID {
			role = "leader"
		}
		suffrage := s.Suffrage
		switch {
		case s.Promotion != "":
			suffrage += " (" + s.Promotion + ")"
		case s.Promoting:
			suffrage += " (promoting)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Address, suffrage, role, contactCell(s.LastContactMs))
	}
	tw.Flush()
	if len(st.BGPSessions) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BGP PEER\tSTATE\tUPTIME\tPREFIXES SENT")
		for _, s := range st.BGPSessions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", s.Peer, s.State, time.Duration(s.UptimeSeconds)*time.Second, s.PrefixesSent)
		}
		tw.Flush()
	}
	if c := st.Certificate; c != nil && c.LastError != "" {
		fmt.Fprintf(w, "WARNING: peer certificate not replaced: %s\n", c.LastError)
	}
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", warn)
	}
}

// contactCell shows a member's last contact: "-" when this node does not know it.
func contactCell(ms int64) string {
	if ms < 0 {
		return "-"
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

// certLine is the peer certificate in one line: where it comes from, when it
// expires and how often it was replaced without a restart.
func certLine(c raftstore.CertStatus, now time.Time) string {
	left := c.NotAfter.Sub(now).Round(time.Second)
	line := fmt.Sprintf("%s (%s), expires %s (in %s), %d renewals", c.Subject, c.Source, c.NotAfter.Format(time.RFC3339), left, c.Renewals)
	if left <= 0 {
		line = fmt.Sprintf("%s (%s), EXPIRED %s, %d renewals", c.Subject, c.Source, c.NotAfter.Format(time.RFC3339), c.Renewals)
	}
	if c.Failures > 0 {
		line += fmt.Sprintf(", %d failed", c.Failures)
	}
	return line
}
