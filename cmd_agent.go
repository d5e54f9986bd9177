package main

import (
	"context"
	"errors"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/raftvip/raftvip/daemon"
)

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "run the raftvip daemon (one per node, usually as a static pod)",
		Description: "Every flag can also be set through the environment as RAFTVIP_<FLAG>, e.g.\n" +
			"RAFTVIP_NODE_NAME or RAFTVIP_CONTROL_PLANE_VIP. Repeatable flags take several values\n" +
			"separated by spaces in the environment.",
		Flags: agentFlags(),
		Action: func(c *cli.Context) error {
			cfg := configFromFlags(c)
			parsed, err := cfg.Validate()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			log, err := daemon.NewLogger(c.App.ErrWriter, cfg.LogLevel, cfg.LogFormat, cfg.NodeName)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			if err := daemon.Run(ctx, parsed, log); err != nil {
				var fe *daemon.FlagError
				if errors.As(err, &fe) {
					return &exitError{code: 2, err: err}
				}
				return err
			}
			return nil
		},
	}
}
