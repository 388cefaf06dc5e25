package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/gopatrol/gopatrol/agent/check"
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
	rc := otelcfg.ResourceConfig{Root: root, ServiceVersion: Version()}
	if pluginDir != "" {
		h, err := host.Open(ctx, host.Config{Dir: pluginDir, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			return nil, usageErr("--plugin-dir %s: %v", pluginDir, err)
		}
		// The probes run once, while the resource is built; no plugin
		// outlives this function.
		defer h.Close()
		rc.Detectors = append(rc.Detectors, probeDetector{h})
	}
	res, err := otelcfg.NewResource(ctx, rc)
	if err != nil {
		return nil, usageErr("--export: %v", err)
	}
	// The console exporter writes to stderr: stdout is the report, which
	// scripts parse with -o json.
	p, err := otelcfg.New(ctx, cfg, res, otelcfg.Options{Console: os.Stderr, Version: Version()})
	if err != nil {
		return nil, usageErr("--export: %v", err)
	}
	return &exporter{p: p, stderr: os.Stderr}, nil
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
	in, err := otelcfg.NewInstruments(e.p.Meter())
	if err != nil {
		e.p.Shutdown(ctx)
		return err
	}
	recordReport(ctx, in, rep)
	return e.p.Shutdown(ctx)
}

// recordReport maps a report onto the catalogue (docs/metrics.md, "The
// doctor's metrics").
func recordReport(ctx context.Context, in *otelcfg.Instruments, rep check.Report) {
	for _, r := range rep.Results {
		id := otelcfg.AttrCheckID.String(r.ID)
		for _, s := range check.Statuses {
			v := int64(0)
			if s == r.Status {
				v = 1
			}
			in.CheckResult.Record(ctx, v, metric.WithAttributes(id, otelcfg.AttrCheckStatus.String(string(s))))
		}
		in.CheckDuration.Record(ctx, r.Duration.Seconds(),
			metric.WithAttributes(id, otelcfg.AttrCheckStatus.String(string(r.Status))))
	}
	if score, ok := healthScore(rep.Summary); ok {
		in.HealthScore.Record(ctx, score)
	}
}

// healthScore is (passes + half the warnings) over the checks that did not
// skip; undefined when all skipped.
func healthScore(summary map[check.Status]int) (float64, bool) {
	counted := summary[check.Pass] + summary[check.Warn] + summary[check.Fail] + summary[check.Error]
	if counted == 0 {
		return 0, false
	}
	return (float64(summary[check.Pass]) + 0.5*float64(summary[check.Warn])) / float64(counted), true
}

// probeDetector turns the probe plugins' merged answer into cloud.*
// resource attributes. It lives here, not in plugins/host, so that the
// plugin host knows nothing of OpenTelemetry.
type probeDetector struct{ h *host.Host }

func (probeDetector) Name() string { return "probe plugins" }

func (d probeDetector) Detect(ctx context.Context) ([]attribute.KeyValue, error) {
	r := d.h.Detect(ctx)
	kv := make([]attribute.KeyValue, 0, len(r.Attributes))
	for _, k := range slices.Sorted(maps.Keys(r.Attributes)) {
		kv = append(kv, attribute.String(k, r.Attributes[k]))
	}
	return kv, nil
}
