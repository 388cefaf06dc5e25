package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/gopatrol/gopatrol/agent"
)

func newAgentCmd() *cobra.Command {
	var (
		file string
		once bool
		over agent.Config // flag values; applied only when set
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the host agent: scheduled checks, eBPF sensors, cloud probes, OpenTelemetry export",
		Long: `agent runs in the foreground until SIGTERM or SIGINT: the doctor's checks on a
schedule, the eBPF sensors and TLS probes for its whole life, the cloud probe
plugins, all exported as OpenTelemetry metrics (OTEL_* environment, as for
check --export). SIGHUP reloads the config file. docs/agent.md lists every
config key and endpoint.

Exit codes: 0 stopped by a signal (or --once and no check failed); 1 a
check failed in --once, or a required part could not start; 2 bad flags,
config or OTEL_* variable; 3 --once and the checks passed but the export
failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl := cmd.Flags()
			flags := func(c *agent.Config) {
				if fl.Changed("listen") {
					c.Listen = over.Listen
				}
				if fl.Changed("host-root") {
					c.HostRoot = over.HostRoot
				}
				// The root's --log-level, when given, overrides log.level.
				if fl.Changed("log-level") {
					c.Log.Level, _ = fl.GetString("log-level")
				}
				if fl.Changed("plugin-dir") {
					c.Plugins.Dir = over.Plugins.Dir
				}
				if fl.Changed("go") {
					c.Go = over.Go
				}
				if fl.Changed("require-sensors") {
					c.Sensors.Require = over.Sensors.Require
				}
			}
			cfg, err := agent.Load(file, flags)
			if err != nil {
				return usageErr("%v", err)
			}
			err = agent.Run(cmd.Context(), cfg, agent.Options{Flags: flags, Once: once, Version: Version(), Stderr: cmd.ErrOrStderr()})
			var ce *agent.ConfigError
			var ee *agent.ExitError
			switch {
			case errors.As(err, &ce):
				return usageErr("%v", err)
			case errors.As(err, &ee):
				return &exitError{code: ee.Code, err: ee.Err}
			case err != nil:
				return &exitError{code: 1, err: err}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&file, "config", "", "the YAML config file (default: every key at its default)")
	fl.BoolVar(&once, "once", false, "run one cycle (detect, one patrol, one export) and exit with the doctor's exit code")
	fl.StringVar(&over.Listen, "listen", "", "address of /healthz, /readyz, /status, /metrics (config: listen)")
	fl.StringVar(&over.HostRoot, "host-root", "", "the host's filesystem root, e.g. /host in a DaemonSet (config: host_root)")
	fl.StringVar(&over.Plugins.Dir, "plugin-dir", "", "directory of the cloud probe plugins (config: plugins.dir)")
	fl.StringVar(&over.Go, "go", "", "the go binary the checks use (config: go)")
	fl.BoolVar(&over.Sensors.Require, "require-sensors", false, "exit instead of running without the eBPF sensors (config: sensors.require)")
	cmd.AddCommand(newAgentStatusCmd())
	return cmd
}
