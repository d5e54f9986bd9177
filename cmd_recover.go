package main

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/raftvip/raftvip/raftstore"
)

func recoverCommand() *cli.Command {
	hostname, _ := os.Hostname()
	return &cli.Command{
		Name:  "recover",
		Usage: "offline, with the agent stopped: make this node the only voter of a new cluster, from its data dir or a backup",
		Description: "Use it only when a majority of the voters is gone for good: until then the cluster has no\n" +
			"leader and no node announces any VIP. Without --from-snapshot it rewrites the Raft\n" +
			"configuration in --data-dir (hashicorp/raft's RecoverCluster) keeping every entry this\n" +
			"node has; with --from-snapshot it restores a backup from 'raftvip snapshot save' into an\n" +
			"empty --data-dir. Then start the agent on this node with --bootstrap; the other nodes join\n" +
			"it with empty data dirs.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data-dir", Value: defaultDataDir, Usage: "the stopped agent's data dir", EnvVars: []string{envName("data-dir")}},
			&cli.StringFlag{Name: "node-name", Value: hostname, Usage: "this node's name, the only voter afterwards (defaults to the hostname)", EnvVars: []string{envName("node-name")}},
			&cli.StringFlag{Name: "raft-address", Usage: "HOST:PORT peers dial for this node (default: its address in the old configuration)"},
			&cli.StringFlag{Name: "from-snapshot", Usage: "a backup file from 'raftvip snapshot save' to restore into an empty --data-dir"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return &exitError{code: 2, err: fmt.Errorf("recover takes no arguments, got %q", c.Args().Slice())}
			}
			name, addr, dir := c.String("node-name"), c.String("raft-address"), c.String("data-dir")
			if name == "" || strings.ContainsAny(name, " =,/") {
				return &exitError{code: 2, err: fmt.Errorf("--node-name %q: want a node name", name)}
			}
			if addr != "" {
				if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
					return &exitError{code: 2, err: fmt.Errorf("--raft-address %q: want HOST:PORT", addr)}
				}
			}
			var rec raftstore.Recovered
			var err error
			if file := c.String("from-snapshot"); file != "" {
				f, ferr := os.Open(file)
				if ferr != nil {
					return &exitError{code: 2, err: fmt.Errorf("--from-snapshot: %w", ferr)}
				}
				defer f.Close()
				rec, err = raftstore.RestoreBackup(dir, name, addr, f)
				if err != nil {
					err = fmt.Errorf("--from-snapshot %s: %w", file, err)
				}
			} else {
				rec, err = raftstore.RecoverDataDir(dir, name, addr)
			}
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			var prev []string
			for _, s := range rec.Previous {
				prev = append(prev, s.ID)
			}
			fmt.Fprintf(c.App.Writer, "recovered %s: %s at %s is the only voter (index %d, term %d); %d pools, %d allocations, %d owners; members before: %s\n",
				dir, rec.Node, rec.Address, rec.Index, rec.Term, len(rec.State.Pools), len(rec.State.Allocations), len(rec.State.Owners), strings.Join(prev, ", "))
			fmt.Fprintln(c.App.Writer, "next: start the agent on this node with --bootstrap; join the other nodes to it with empty data dirs")
			return nil
		},
	}
}
