package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"

	"go.opentelemetry.io/otel/attribute"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/record"
	"github.com/gopatrol/gopatrol/otelcfg"
	"github.com/gopatrol/gopatrol/plugins/host"
)

// ExitExport is the exit code of `gopatrol check --export` when every check
// passed but the metrics did not arrive. A failing check keeps exit 1 (the
// export failure is still on stderr): the checks' meaning comes first.
const ExitExport = 3

// exporter sends one run's results as metrics (`check --export`).
type exporter struct {
	p      *otelcfg.Provider
	stderr io.Writer
	// probes are the plugins' states from --plugin-dir, recorded as
	// gopatrol.probe.up beside the report.
	probes []record.ProbeState
}

// prepareExport reads and validates OTEL_* before any check runs, so a
// typo is exit 2 at once and not after a minute of checks. It returns nil
// when --export is off.
func prepareExport(ctx context.Context, enabled bool, root, pluginDir string) (*exporter, error) {
	if !enabled {
		if pluginDir != "" {
			return nil, usageErr("--plugin-dir %s: only used with --export", pluginDir)
		}
		return nil, nil
	}
	cfg, err := otelcfg.FromEnv(os.LookupEnv)
	if err != nil {
		return nil, usageErr("--export: %v", err)
	}
	if cfg.File != "" {
		// otelconf would re-read it and replace the resource built below
		// (otelcfg.New refuses while it is set); the file is read already.
		os.Unsetenv("OTEL_CONFIG_FILE")
	}
	if slices.Contains(cfg.Exporters, otelcfg.ExporterPrometheus) {
		return nil, usageErr("--export: OTEL_METRICS_EXPORTER=prometheus is a pull endpoint, which a one-shot check cannot serve: use otlp or console (the agent serves prometheus)")
	}
	e := &exporter{stderr: os.Stderr}
	rc := otelcfg.ResourceConfig{Root: root, ServiceVersion: Version()}
	if pluginDir != "" {
		attrs, err := e.detect(ctx, pluginDir)
		if err != nil {
			return nil, err
		}
		rc.Detectors = append(rc.Detectors, otelcfg.StaticDetector{Source: "probe plugins", Attrs: attrs})
	}
	res, err := otelcfg.NewResource(ctx, rc)
	if err != nil {
		return nil, usageErr("--export: %v", err)
	}
	// The console exporter writes to stderr: stdout is the report, which
	// scripts parse with -o json.
	e.p, err = otelcfg.New(ctx, cfg, res, otelcfg.Options{Console: os.Stderr, Version: Version()})
	if err != nil {
		return nil, usageErr("--export: %v", err)
	}
	return e, nil
}

// detect runs the probe plugins of dir once, says on stderr which of them
// failed, and returns their merged cloud.* attributes. No plugin outlives
// it.
func (e *exporter) detect(ctx context.Context, dir string) ([]attribute.KeyValue, error) {
	h, err := host.Open(host.Config{Dir: dir, Logger: slog.Default()})
	if err != nil {
		return nil, usageErr("--plugin-dir %s: %v", dir, err)
	}
	defer h.Close()
	rep := h.Detect(ctx)
	e.probes = record.ProbeStates(h.Found(), rep)
	for _, s := range e.probes {
		if !s.Up {
			fmt.Fprintf(e.stderr, "gopatrol: probe %s is down (gopatrol.probe.up 0): %s\n", s.Plugin, s.Reason)
		}
	}
	return record.ProbeAttributes(rep), nil
}

// exitCode exports rep and returns the process exit code: the checks' code,
// or ExitExport when the checks passed and the export failed. The report is
// already written; a failed export only adds a line on stderr.
func (e *exporter) exitCode(ctx context.Context, rep check.Report, code int) int {
	if e == nil {
		return code
	}
	if err := e.send(ctx, rep); err != nil {
		fmt.Fprintln(e.stderr, "gopatrol:", err)
		if code == check.ExitOK {
			return ExitExport
		}
	}
	return code
}

// send records the run once and flushes within the OTLP timeout.
func (e *exporter) send(ctx context.Context, rep check.Report) error {
	// An interrupt after the report still gets the export its timeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.p.Timeout())
	defer cancel()
	r, err := record.New(e.p.Meter())
	if err != nil {
		e.p.Shutdown(ctx)
		return err
	}
	r.Report(ctx, rep)
	r.Probes(ctx, e.probes)
	return e.p.Shutdown(ctx)
}
