package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/gopatrol/gopatrol/agent/logging"
)

// exitError carries a process exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr is a bad invocation or configuration: exit 2, one line that
// names the value.
func usageErr(format string, a ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, a...)}
}

// silentExit ends the process with code without printing anything more:
// the command already reported.
func silentExit(code int) error { return &exitError{code: code} }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "gopatrol",
		Short:         "Find what breaks Go builds on this machine, and on every node of a fleet",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: 2, err: err}
	})
	// One logger for every command, on stderr (stdout is the report):
	// slog.Default, so the plugin host and otelcfg log through it too.
	var logFormat, logLevel string
	pf := root.PersistentFlags()
	pf.StringVar(&logFormat, "log-format", "text", "log format on stderr: text or json")
	pf.StringVar(&logLevel, "log-level", "warn", "lowest level logged: debug, info, warn or error")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		opts, err := logging.Parse(logFormat, logLevel)
		if err != nil {
			return usageErr("%v", err)
		}
		slog.SetDefault(logging.New(cmd.ErrOrStderr(), opts))
		return nil
	}
	// Every command, in the order of `gopatrol --help`.
	root.AddCommand(
		newCheckCmd(),
		newTraceCmd(),
		newPluginsCmd(),
		newAgentCmd(),
		newRulesCmd(),
		newPreflightCmd(),
		newVersionCmd(),
	)
	return root
}

// validOutput accepts the output formats every command shares.
func validOutput(format string) error {
	if format != "text" && format != "json" {
		return usageErr("-o %q: unknown output format, want text or json", format)
	}
	return nil
}

func init() {
	// A subcommand's own PersistentPreRunE (plugins validates its flags
	// there) runs after the root's, which sets the logger up, instead of
	// replacing it.
	cobra.EnableTraverseRunHooks = true
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRoot()
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "gopatrol:", ee.err)
		}
		return ee.code
	}
	// Anything cobra itself rejects (unknown command, bad args) is usage.
	fmt.Fprintln(os.Stderr, "gopatrol:", err)
	return 2
}
