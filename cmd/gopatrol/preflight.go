package main

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/gopatrol/gopatrol/agent"
	"github.com/gopatrol/gopatrol/agent/preflight"
)

func newPreflightCmd() *cobra.Command {
	var (
		file, output string
		over         agent.Config
	)
	cmd := &cobra.Command{
		Use:   "preflight",
		Short: "Say whether this node can host the agent, and what each missing part costs",
		Long: `preflight inspects what the agent's config needs: the capabilities held
(CAP_BPF, CAP_PERFMON, CAP_SYS_CHROOT, ...), kernel BTF, uprobes, lockdown
mode, perf_event_paranoid, the memlock limit, tracefs, the host root mount and
the state directory. It prints what is missing, how to fix it and which
sensors stay off without it. The DaemonSet runs it as an init container.

Exit codes: 0 ready or degraded (the agent runs, maybe without its sensors);
1 a required part is missing (the host root, the state directory, a
capability the checks need, or the sensors' parts with --require-sensors);
2 bad flags or config.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validOutput(output); err != nil {
				return err
			}
			fl := cmd.Flags()
			cfg, err := agent.Load(file, func(c *agent.Config) {
				if fl.Changed("host-root") {
					c.HostRoot = over.HostRoot
				}
				if fl.Changed("state-dir") {
					c.StateDir = over.StateDir
				}
				if fl.Changed("require-sensors") {
					c.Sensors.Require = over.Sensors.Require
				}
				if fl.Changed("plugin-dir") {
					c.Plugins.Dir = over.Plugins.Dir
				}
			})
			if err != nil {
				return usageErr("%v", err)
			}
			r := preflight.Run(preflight.Options{
				HostRoot: cfg.HostRoot, StateDir: cfg.StateDir,
				Sensors: cfg.Sensors.Enabled, TLS: cfg.Sensors.TLS, RequireSensors: cfg.Sensors.Require,
				AsUser: cfg.Checks.AsUser, RingSize: cfg.Sensors.RingSize, PluginsDir: cfg.Plugins.Dir,
			})
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				err = enc.Encode(r)
			} else {
				err = r.WriteText(out)
			}
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if !r.OK {
				return silentExit(1)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&file, "config", "", "the agent's YAML config file (default: every key at its default)")
	fl.StringVarP(&output, "output", "o", "text", "output format: text or json")
	fl.StringVar(&over.HostRoot, "host-root", "", "the host's filesystem root, e.g. /host (config: host_root)")
	fl.StringVar(&over.StateDir, "state-dir", "", "the agent's state directory (config: state_dir)")
	fl.StringVar(&over.Plugins.Dir, "plugin-dir", "", "directory of the cloud probe plugins (config: plugins.dir)")
	fl.BoolVar(&over.Sensors.Require, "require-sensors", false, "make a missing sensor part fatal (config: sensors.require)")
	return cmd
}
