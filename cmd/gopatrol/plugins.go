package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gopatrol/gopatrol/agent/record"
	"github.com/gopatrol/gopatrol/plugins/host"
)

type pluginsFlags struct {
	dir      string
	manifest string
	output   string
	timeout  time.Duration
}

func newPluginsCmd() *cobra.Command {
	var f pluginsFlags
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List and run the cloud probe plugins",
		Long: `plugins manages the cloud probe plugins (gopatrol-probe-*, hashicorp/go-plugin
over gRPC) of a plugin directory. A plugin runs only if its sha256 is in the
directory's SHA256SUMS manifest and neither it, the directory nor the
manifest can be written by group or others, or belongs to another user than
root or the one running gopatrol.

Exit codes: 0 all plugins verified (and, for detect, answered); 1 a plugin
was refused, failed or is down; 2 bad invocation or plugin directory.`,
		// Flags shared by every subcommand are validated once, here.
		PersistentPreRunE: func(*cobra.Command, []string) error { return f.validate() },
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.dir, "plugin-dir", host.DefaultDir, "the plugin directory")
	pf.StringVar(&f.manifest, "manifest", "", "the checksum manifest (default: SHA256SUMS in the plugin directory)")
	pf.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	pf.DurationVar(&f.timeout, "timeout", 2*time.Second, "deadline of each call to a plugin")

	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the plugins found, whether they are verified, and their versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPluginsList(cmd.OutOrStdout(), f)
		},
	}, &cobra.Command{
		Use:   "detect",
		Short: "Run every verified probe and print the node's merged cloud attributes and timings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPluginsDetect(cmd.Context(), cmd.OutOrStdout(), f)
		},
	})
	return cmd
}

func (f pluginsFlags) validate() error {
	if err := validOutput(f.output); err != nil {
		return err
	}
	if f.timeout <= 0 {
		return usageErr("--timeout %v: want a positive duration such as 2s", f.timeout)
	}
	return nil
}

func (f pluginsFlags) open() (*host.Host, error) {
	h, err := host.Open(host.Config{
		Dir: f.dir, Manifest: f.manifest, CallTimeout: f.timeout,
		Logger: slog.Default(),
	})
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return h, nil
}

type pluginEntry struct {
	Name        string `json:"name"`
	Path        string `json:"path"`
	Verified    bool   `json:"verified"`
	SHA256      string `json:"sha256,omitempty"`
	Version     string `json:"version,omitempty"`
	Description string `json:"description,omitempty"`
	Error       string `json:"error,omitempty"`
}

func runPluginsList(w io.Writer, f pluginsFlags) error {
	found, err := host.Discover(f.dir, f.manifest, nil)
	if err != nil {
		return usageErr("%v", err)
	}
	h, err := f.open()
	if err != nil {
		return err
	}
	defer h.Close()
	running := map[string]*host.Plugin{}
	for _, p := range h.Plugins() {
		running[p.Name] = p
	}
	var entries []pluginEntry
	bad := false
	for _, c := range found {
		e := pluginEntry{Name: c.Name, Path: c.Path, Verified: c.Verified(), SHA256: c.SHA256}
		if c.Err != nil {
			e.Error = c.Err.Error()
		} else if p := running[c.Name]; p != nil {
			info, err := p.Info()
			if err != nil {
				e.Verified, e.Error = false, err.Error()
			}
			e.Version, e.Description = info.Version, info.Description
		}
		bad = bad || e.Error != ""
		entries = append(entries, e)
	}
	if f.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"schema": "gopatrol.plugins.list/v1", "dir": f.dir, "plugins": entries}); err != nil {
			return err
		}
	} else {
		if len(entries) == 0 {
			fmt.Fprintf(w, "no %s* plugins in %s\n", host.Prefix, f.dir)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERIFIED\tVERSION\tDESCRIPTION")
		for _, e := range entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, yesNo(e.Verified), dash(e.Version), dash(e.Description))
		}
		tw.Flush()
		for _, e := range entries {
			if e.Error != "" {
				fmt.Fprintf(w, "%s: %s\n", e.Name, e.Error)
			}
		}
	}
	if bad {
		return silentExit(1)
	}
	return nil
}

func runPluginsDetect(ctx context.Context, w io.Writer, f pluginsFlags) error {
	start := time.Now()
	h, err := f.open()
	if err != nil {
		return err
	}
	r := h.Detect(ctx)
	h.Close()
	total := time.Since(start)
	bad := false
	for _, s := range record.ProbeStates(h.Found(), r) {
		bad = bad || !s.Up
	}
	if f.output == "json" {
		var refused []pluginEntry
		for _, c := range h.Found() {
			if !c.Verified() {
				refused = append(refused, pluginEntry{Name: c.Name, Path: c.Path, Error: c.Err.Error()})
			}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err := enc.Encode(struct {
			Schema  string        `json:"schema"`
			Dir     string        `json:"dir"`
			Refused []pluginEntry `json:"refused,omitempty"`
			host.Report
			TotalMS float64 `json:"total_ms"`
		}{"gopatrol.plugins.detect/v1", f.dir, refused, r, ms(total)})
		if err != nil {
			return err
		}
	} else {
		printDetect(w, h, r, total)
	}
	if bad {
		return silentExit(1)
	}
	return nil
}

func printDetect(w io.Writer, h *host.Host, r host.Report, total time.Duration) {
	if len(r.Attributes) == 0 {
		fmt.Fprintln(w, "attributes: none (no probe recognised this node's cloud)")
	} else {
		fmt.Fprintln(w, "attributes:")
		keys := make([]string, 0, len(r.Attributes))
		for k := range r.Attributes {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, k := range keys {
			fmt.Fprintf(tw, "  %s\t%s\t(%s)\n", k, r.Attributes[k], r.Sources[k])
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "probes:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, res := range r.Results {
		fmt.Fprintf(tw, "  %s\t%s\t%.1f ms\t%s\n", res.Plugin, res.Status, res.DurationMS, oneLine(res.Reason))
	}
	for _, c := range h.Found() {
		if !c.Verified() {
			fmt.Fprintf(tw, "  %s\trefused\t-\t%s\n", c.Name, oneLine(c.Err.Error()))
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "detect %.1f ms, total %.1f ms (start, detect, shutdown)\n", r.DurationMS, ms(total))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
