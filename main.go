// Command raftvip gives a bare-metal Kubernetes cluster its virtual IPs: the
// control-plane VIP and the external IPs of LoadBalancer Services, agreed through Raft.
// This file only turns flags into a daemon.Config; the logic lives in the packages.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/urfave/cli/v2"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "raftvip:", err)
		os.Exit(exitCode(err))
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:  "raftvip",
		Usage: "virtual IPs for bare-metal Kubernetes, agreed through Raft",
		Description: "raftvip runs as a static pod on every node. Control-plane nodes form a Raft group that\n" +
			"decides which node announces each VIP; the owner adds it to its interface and tells the\n" +
			"segment with gratuitous ARP / unsolicited neighbour advertisements.",
		HideVersion: true,
		// Repeatable flags carry commas inside one value (pools), so urfave's comma
		// splitting is off; flags.go splits where a flag allows it.
		DisableSliceFlagSeparator: true,
		Commands: []*cli.Command{
			agentCommand(),
			statusCommand(),
			manifestCommand(),
			membersCommand(),
			snapshotCommand(),
			recoverCommand(),
			{
				Name:  "version",
				Usage: "print version, commit and Go version",
				Action: func(c *cli.Context) error {
					fmt.Fprintf(c.App.Writer, "raftvip %s (commit %s, %s %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
					return nil
				},
			},
		},
	}
}

// exitError carries the process exit code chosen by a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if e, ok := err.(*exitError); ok {
		return e.code
	}
	return 1
}

// envName maps a flag name to the environment variable that sets it.
func envName(flag string) string {
	return "RAFTVIP_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}
