package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/raftvip/raftvip/daemon/admin"
	"github.com/raftvip/raftvip/raftstore"
)

// adminFlags are the flags of every command that talks to the local agent's
// admin socket; the environment variable is the agent's own, so one setting
// serves both.
func adminFlags(timeout time.Duration) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "admin-socket", Value: defaultAdminSocket, Usage: "the local agent's admin socket (root only)", EnvVars: []string{envName("admin-socket")}},
		&cli.DurationFlag{Name: "timeout", Value: timeout, Usage: "how long to wait for the agent"},
	}
}

// adminCall sends one request to the local agent; any failure (unreachable
// agent, refused request) is exit code 1 with the agent's or the socket's
// error.
func adminCall(c *cli.Context, req admin.Request, payload io.Writer) (admin.Response, error) {
	resp, err := admin.Call(c.String("admin-socket"), req, c.Duration("timeout"), payload)
	if err != nil {
		return resp, &exitError{code: 1, err: err}
	}
	return resp, nil
}

func membersCommand() *cli.Command {
	return &cli.Command{
		Name:  "members",
		Usage: "list or remove Raft members through the local agent's admin socket (root only)",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "show every member as the leader sees it; exits 1 when the agent reaches no leader (it then shows its own view)",
				Flags: append(adminFlags(15*time.Second),
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "table or json"}),
				Action: func(c *cli.Context) error {
					out := c.String("output")
					if out != "table" && out != "json" {
						return &exitError{code: 2, err: fmt.Errorf("--output %q: want table or json", out)}
					}
					if c.Args().Len() > 0 {
						return &exitError{code: 2, err: fmt.Errorf("members list takes no arguments, got %q", c.Args().Slice())}
					}
					resp, err := adminCall(c, admin.Request{Op: admin.OpMembers}, nil)
					if err != nil {
						return err
					}
					if resp.Members == nil {
						return &exitError{code: 3, err: fmt.Errorf("admin socket %s: answer without a member list", c.String("admin-socket"))}
					}
					list := *resp.Members
					if out == "json" {
						enc := json.NewEncoder(c.App.Writer)
						enc.SetIndent("", "  ")
						if err := enc.Encode(list); err != nil {
							return err
						}
					} else {
						printMembers(c.App.Writer, list)
					}
					if !list.FromLeader {
						return &exitError{code: 1, err: fmt.Errorf("%s reaches no leader: the list is its own view, last contacts unknown", list.AnsweredBy)}
					}
					return nil
				},
			},
			{
				Name:      "remove",
				Usage:     "remove a member (a dead or retired node) from the Raft configuration; refused when it would cost the quorum",
				ArgsUsage: "NAME",
				Flags:     adminFlags(15 * time.Second),
				Action: func(c *cli.Context) error {
					if c.Args().Len() != 1 || c.Args().First() == "" {
						return &exitError{code: 2, err: fmt.Errorf("members remove takes exactly one member name, got %q", c.Args().Slice())}
					}
					name := c.Args().First()
					if _, err := adminCall(c, admin.Request{Op: admin.OpRemove, Name: name}, nil); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "removed %s\n", name)
					return nil
				},
			},
		},
	}
}

func printMembers(w io.Writer, list raftstore.MemberList) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tADDRESS\tSUFFRAGE\tLEADER\tLAST CONTACT")
	for _, m := range list.Members {
		leader, contact := "", "unknown"
		if m.Leader {
			leader = "*"
		}
		switch {
		case m.Leader && list.FromLeader:
			contact = "-"
		case m.LastContactMs >= 0:
			contact = (time.Duration(m.LastContactMs) * time.Millisecond).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.ID, m.Address, m.Suffrage, leader, contact)
	}
	tw.Flush()
	if !list.FromLeader {
		fmt.Fprintf(w, "WARNING: answered by %s, which reaches no leader\n", list.AnsweredBy)
	}
}
