package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/raftvip/raftvip/daemon/admin"
	"github.com/raftvip/raftvip/raftstore"
)

func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:  "snapshot",
		Usage: "back up the replicated state through the local agent's admin socket (root only)",
		Subcommands: []*cli.Command{
			{
				Name:      "save",
				Usage:     "write a backup (a Raft snapshot with a header) to FILE, atomically; restore it with raftvip recover --from-snapshot",
				ArgsUsage: "FILE",
				Flags:     adminFlags(60 * time.Second),
				Action: func(c *cli.Context) error {
					if c.Args().Len() != 1 || c.Args().First() == "" {
						return &exitError{code: 2, err: fmt.Errorf("snapshot save takes exactly one file name, got %q", c.Args().Slice())}
					}
					file := c.Args().First()
					h, err := saveBackup(c, file)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "saved %s: taken on %s at index %d (term %d), %d members, %d pools, %d allocations, %d owners, %d bytes\n",
						file, h.Node, h.Index, h.Term, len(h.Servers), h.Pools, h.Allocations, h.Owners, h.Size)
					return nil
				},
			},
		},
	}
}

// saveBackup fetches a backup into a temporary file next to file, checks it as
// a restore would, syncs it and renames it into place: file is either the old
// one or a complete, verified backup, never a torn one.
func saveBackup(c *cli.Context, file string) (raftstore.BackupHeader, error) {
	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, ".raftvip-backup-*")
	if err != nil {
		return raftstore.BackupHeader{}, &exitError{code: 2, err: fmt.Errorf("backup file %s: %w", file, err)}
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := adminCall(c, admin.Request{Op: admin.OpSnapshot}, tmp); err != nil {
		return raftstore.BackupHeader{}, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return raftstore.BackupHeader{}, err
	}
	h, _, _, err := raftstore.ReadBackup(tmp)
	if err != nil {
		return h, fmt.Errorf("backup from the agent does not verify: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return h, fmt.Errorf("backup file %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return h, fmt.Errorf("backup file %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return h, fmt.Errorf("backup file %s: %w", file, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return h, nil
}
