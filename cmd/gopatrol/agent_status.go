package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gopatrol/gopatrol/agent"
	"github.com/gopatrol/gopatrol/agent/inventory"
)

// stateDirFlags find the agent's state directory: --state-dir, else the
// state_dir of --config, else the default.
type stateDirFlags struct{ stateDir, config string }

func (f *stateDirFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.stateDir, "state-dir", "", "the agent's state directory (default: state_dir of --config, else "+agent.Default().StateDir+")")
	cmd.Flags().StringVar(&f.config, "agent-config", "", "the agent's config file, for its state_dir")
}

// inventory reads the agent's environment inventory.
func (f *stateDirFlags) inventory() (inventory.State, error) {
	dir := f.stateDir
	if dir == "" {
		cfg, err := agent.Load(f.config, nil)
		if err != nil {
			return inventory.State{}, usageErr("--agent-config: %v", err)
		}
		dir = cfg.StateDir
	}
	st, err := inventory.Load(inventory.StatePath(dir))
	if err != nil {
		return inventory.State{}, &exitError{code: 1, err: err}
	}
	return st, nil
}

func newAgentStatusCmd() *cobra.Command {
	var (
		sd     stateDirFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List the Go environments the agent has seen builds use, and their last patrol",
		Long: `status reads the agent's inventory of Go environments (environments.json in
its state directory, written by the running agent; root only): each
environment's ID, user, toolchain, container and module, how many go
commands used it, when it was last seen, and its last patrol. Then the
changes of the last 24 hours. docs/environments.md explains them.

Exit codes: 0 listed; 1 no inventory (the agent has not written one);
2 bad flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validOutput(output); err != nil {
				return err
			}
			st, err := sd.inventory()
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			writeInventory(cmd.OutOrStdout(), st)
			return nil
		},
	}
	sd.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// writeInventory prints one line per environment, its problems under it,
// then the last day's changes.
func writeInventory(w io.Writer, st inventory.State) {
	fmt.Fprintf(w, "%d Go environments (limit %d), as of %s\n\n", len(st.Entries), st.Limit, st.Written.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUID\tVERSION\tCONTAINER\tMODULE\tBUILDS\tLAST SEEN\tPATROL")
	for _, e := range st.Entries {
		patrol := "pending"
		if e.Patrol != nil {
			patrol = e.Patrol.Outcome + " " + e.Patrol.At.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", e.ID, e.Env.UID, orDash(e.Env.Version),
			containerName(e.Env.Container), orDash(e.Env.Module), e.Builds, e.LastSeen.Format(time.RFC3339), patrol)
	}
	tw.Flush()
	for _, e := range st.Entries {
		if e.Patrol == nil || e.Patrol.Healthy() {
			continue
		}
		fmt.Fprintf(w, "\n%s (%s, go %s):\n", e.ID, e.Patrol.Outcome, e.Env.Go)
		if e.Patrol.Reason != "" {
			fmt.Fprintf(w, "    %s\n", e.Patrol.Reason)
		}
		for _, p := range e.Patrol.Problems {
			fmt.Fprintf(w, "    %s %s: %s\n", p.Status, p.ID, p.Summary)
		}
		fmt.Fprintf(w, "    → rerun: gopatrol check --env %s\n", e.ID)
	}
	if len(st.Changes) > 0 {
		fmt.Fprintln(w, "\nChanges (last 24 hours):")
		for _, c := range st.Changes {
			fmt.Fprintf(w, "  %s %s\n", c.Time.Format(time.RFC3339), c.Describe())
		}
	}
}

func containerName(c inventory.Container) string {
	switch {
	case c.ID != "":
		return c.ID[:12]
	case c.Pod != "":
		return "pod " + c.Pod
	case c.MountNS != 0:
		return fmt.Sprintf("mntns %d", c.MountNS)
	}
	return "host"
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
