package main

import (
	"errors"
	"fmt"
	"net"

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
		}, daemonSetCommand()},
	}
}

// notForWorkers are agent flags `manifest daemonset` does not take: the DaemonSet
// sets them itself (per node from the downward API, or --tls-csr with the
// ServiceAccount's CA and token), or they belong to control-plane nodes.
var notForWorkers = map[string]bool{
	"node-name": true, "advertise-address": true, "pod-name": true,
	"peer": true, "bootstrap": true, "control-plane": true, "control-plane-vip": true,
	"tls-ca-cert": true, "tls-ca-key": true, "tls-cert": true, "tls-key": true, "tls-csr": true,
	"insecure-transport": true, "kubeconfig": true, "peer-cert-lifetime": true, "worker-cert-lifetime": true,
	"apiserver-health-url": true, "apiserver-health-interval": true,
}

func daemonSetCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "image", Value: "ghcr.io/raftvip/raftvip:" + version, Usage: "container image of the agent"},
	}
	for _, f := range agentFlags() {
		if !notForWorkers[f.Names()[0]] {
			flags = append(flags, f)
		}
	}
	return &cli.Command{
		Name: "daemonset",
		Usage: "print the worker DaemonSet with its ServiceAccount and RBAC: workers join as nonvoters and get their " +
			"peer certificate from the raftvip leader through a Kubernetes CSR (--tls-csr), never the CA key",
		Flags: flags,
		Action: func(c *cli.Context) error {
			joins := c.StringSlice("join")
			if len(joins) == 0 {
				return &exitError{code: 2, err: errors.New("--join: give HOST:PORT of the control-plane VIP (or of voters) that workers join through")}
			}
			for _, j := range joins {
				if host, port, err := net.SplitHostPort(j); err != nil || host == "" || port == "" {
					return &exitError{code: 2, err: fmt.Errorf("--join %q: want HOST:PORT of the control-plane VIP or a voter", j)}
				}
			}
			var args []string
			for _, f := range c.Command.Flags {
				name := f.Names()[0]
				if manifestOnly[name] || name == "namespace" || name == "data-dir" || name == "status-address" || !c.IsSet(name) {
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
			out, err := staticpod.RenderDaemonSet(staticpod.DaemonSetOptions{
				Image:         c.String("image"),
				Namespace:     c.String("namespace"),
				AgentArgs:     args,
				DataDir:       c.String("data-dir"),
				StatusAddress: c.String("status-address"),
			})
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			_, err = c.App.Writer.Write(out)
			return err
		},
	}
}
