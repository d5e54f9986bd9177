package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/raftvip/raftvip/staticpod"
)

// manifestOnly are flags of `manifest pod` itself, not passed to the agent.
var manifestOnly = map[string]bool{"image": true}

func manifestCommand() *cli.Command {
	flags := append([]cli.Flag{
		&cli.StringFlag{Name: "image", Value: "ghcr.io/raftvip/raftvip:" + version, Usage: "container image of the agent"},
	}, agentFlags()...)
	return &cli.Command{
		Name:  "manifest",
		Usage: "print installation manifests",
		Subcommands: []*cli.Command{{
			Name:  "pod",
			Usage: "print a static pod manifest for /etc/kubernetes/manifests, built from the same flags as `agent`",
			Flags: flags,
			Action: func(c *cli.Context) error {
				cfg := configFromFlags(c)
				parsed, err := cfg.Validate()
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				if cfg.BGPPasswordFile == "" {
					for _, p := range parsed.BGP.Peers {
						if p.Password != "" {
							return &exitError{code: 2, err: fmt.Errorf("--bgp-peer %s: password= would be readable by anyone who can read pods (the pod spec shows the arguments); put the password in a file on the node and give --bgp-password-file", p.Address)}
						}
					}
				}
				// The node name always goes in: a manifest is written for one node.
				args := []string{"--node-name=" + cfg.NodeName}
				for _, f := range c.Command.Flags {
					name := f.Names()[0]
					if manifestOnly[name] || name == "node-name" || !c.IsSet(name) {
						continue
					}
					if _, ok := f.(*cli.StringSliceFlag); ok {
						for _, v := range c.StringSlice(name) {
							args = append(args, fmt.Sprintf("--%s=%s", name, v))
						}
						continue
					}
					args = append(args, fmt.Sprintf("--%s=%v", name, c.Value(name)))
				}
				out, err := staticpod.Render(staticpod.Options{
					Image:         c.String("image"),
					Namespace:     cfg.Namespace,
					AgentArgs:     args,
					DataDir:       cfg.DataDir,
					StatusAddress: cfg.StatusAddress,
					HostPaths:     staticpod.MountedFiles(cfg.TLSCACert, cfg.TLSCAKey, cfg.Kubeconfig, cfg.BGPPasswordFile),
					HostDirs:      staticpod.MountedDirs(cfg.TLSCert, cfg.TLSKey),
				})
				if err != nil {
					return err
				}
				_, err = c.App.Writer.Write(out)
				return err
			},
		}},
	}
}
