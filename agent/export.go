package agent

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/runtime"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/gopatrol/gopatrol/agent/record"
	"github.com/gopatrol/gopatrol/metricdef"
	"github.com/gopatrol/gopatrol/otelcfg"
	"github.com/gopatrol/gopatrol/plugins/host"
)

// selfInstruments are the agent's own counters (metricdef's
// SpecAgent*); the runtime instrumentation adds the process's CPU, memory
// and Go runtime.
type selfInstruments struct {
	exportFailures metric.Int64Counter
	reloads        metric.Int64Counter
	skipped        metric.Int64Counter
}

// startExport detects the node through the plugins (bounded by the probe
// deadline), builds the resource and the meter provider. The provider
// comes after the plugins because a resource cannot change once the SDK
// has it, and the first export must carry cloud.*.
func (a *agent) startExport(ctx context.Context) error {
	cfg := a.plan.cfg
	var detectors []otelcfg.Detector
	if cfg.Plugins.Dir != "" {
		h, err := host.Open(ctx, host.Config{Dir: cfg.Plugins.Dir, Logger: a.log, PluginLog: a.opts.Stderr})
		if err != nil {
			return &ConfigError{File: cfg.File, Key: "plugins.dir", Msg: err.Error()}
		}
		a.plugins = h
		dctx, cancel := context.WithTimeout(ctx, cfg.Plugins.ProbeDeadline)
		rep := h.Detect(dctx)
		cancel()
		a.setProbes(h.Found(), rep)
		detectors = append(detectors, otelcfg.StaticDetector{Source: "probe plugins", Attrs: nonEmpty(record.ProbeAttributes(rep))})
	}
	k8s, err := readK8s(cfg.K8s, a.opts.Lookup)
	if err != nil {
		return err
	}
	detectors = append(detectors, k8s...)
	res, err := otelcfg.NewResource(ctx, otelcfg.ResourceConfig{
		Root: cfg.HostRoot, ServiceVersion: a.opts.Version, ClusterName: cfg.K8s.ClusterName,
		Detectors: detectors, Lookup: a.opts.Lookup, Logger: a.log,
	})
	if err != nil {
		return &ConfigError{Key: "environment", Msg: err.Error()}
	}
	a.res = res
	oc := a.plan.otel
	// The agent's export loop flushes every interval (and so knows when
	// an export failed); the SDK's periodic reader is only a backstop.
	oc.Interval = 24 * time.Hour
	a.provider, err = otelcfg.New(ctx, oc, res, otelcfg.Options{
		Console: a.opts.Stderr, Version: a.opts.Version, Logger: a.log,
		MeterOptions: []sdkmetric.Option{sdkmetric.WithCardinalityLimit(cfg.Metrics.CardinalityLimit), a.selfReader()},
	})
	if err != nil {
		return &ConfigError{Key: "environment", Msg: err.Error()}
	}
	if a.rec, err = record.New(a.provider.Meter()); err != nil {
		return err
	}
	in := a.rec.Instruments()
	a.self = selfInstruments{exportFailures: in.AgentExportFailures, reloads: in.AgentReloads, skipped: in.AgentPatrolsSkipped}
	if err := runtime.Start(runtime.WithMeterProvider(a.provider.MeterProvider())); err != nil {
		a.log.Warn("runtime metrics off", "err", err)
	}
	a.log.Info("export ready", "endpoint", a.provider.Endpoint(), "interval", a.interval().String())
	return nil
}

// nonEmpty drops attributes a probe left empty, so that a later source
// (the node's topology labels) may still give them.
func nonEmpty(kvs []attribute.KeyValue) []attribute.KeyValue {
	out := kvs[:0:0]
	for _, kv := range kvs {
		if kv.Value.Emit() != "" {
			out = append(out, kv)
		}
	}
	return out
}

// exportPeriod is the longest a healthy export loop takes between two
// ticks: the interval, the probes' detection and the export's timeout.
// An unreachable collector makes every export run to its timeout; that
// is not a stall (agent/soak's collector outage showed /healthz 503
// when the period was the interval alone).
func (a *agent) exportPeriod() time.Duration {
	d := a.interval()
	if a.provider != nil {
		d += a.provider.Timeout()
	}
	if a.plugins != nil {
		d += a.plan.cfg.Plugins.ProbeDeadline
	}
	return d
}

// interval is the export loop's period (OTEL_METRIC_EXPORT_INTERVAL).
func (a *agent) interval() time.Duration {
	if d := a.plan.otel.Interval; d > 0 {
		return d
	}
	return time.Minute
}

func (a *agent) setProbes(found []host.Candidate, rep host.Report) {
	states := record.ProbeStates(found, rep)
	a.mu.Lock()
	a.probes, a.detection = states, &rep
	a.mu.Unlock()
	for _, s := range states {
		if !s.Up {
			a.log.Warn("probe down", "plugin", s.Plugin, "reason", s.Reason)
		}
	}
}

func (a *agent) shutdownExport(ctx context.Context) error {
	if a.provider == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.provider.Timeout())
	defer cancel()
	return a.provider.Shutdown(ctx)
}

// exportLoop records what is sampled (sensor counters, probe health) and
// flushes, every export interval.
func (a *agent) exportLoop(ctx context.Context) {
	for {
		a.exportOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-a.clock.After(a.interval()):
		}
	}
}

func (a *agent) exportOnce(ctx context.Context) {
	a.mu.Lock()
	a.exportTick = a.clock.Now()
	a.mu.Unlock()
	if a.sensor != nil {
		if st, err := a.sensor.Stats(); err == nil {
			a.agg.Counters(ctx, st)
			a.sensor.ResetSamples()
		}
	}
	if a.plugins != nil {
		// Bounded as at start: a plugin that hangs while it restarts must
		// not hold the export (and /healthz) with it (found by agent/soak).
		dctx, cancel := context.WithTimeout(ctx, a.plan.cfg.Plugins.ProbeDeadline)
		rep := a.plugins.Detect(dctx)
		cancel()
		a.setProbes(a.plugins.Found(), rep)
	}
	a.recordProbes(ctx)
	fctx, cancel := context.WithTimeout(ctx, a.provider.Timeout())
	defer cancel()
	err := a.provider.ForceFlush(fctx)
	a.mu.Lock()
	a.exportErr = ""
	if err != nil {
		a.exportErr = err.Error()
	}
	a.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		a.self.exportFailures.Add(ctx, 1, metric.WithAttributes(metricdef.AttrErrorType.String(exportErrorType(err))))
		a.log.Warn("export failed", "endpoint", a.provider.Endpoint(), "err", err)
	}
}

func exportErrorType(err error) string {
	var ee *otelcfg.ExportError
	if errors.As(err, &ee) {
		return "export"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "_OTHER"
}

func (a *agent) recordProbes(ctx context.Context) {
	a.mu.Lock()
	states := a.probes
	a.mu.Unlock()
	if a.rec != nil {
		a.rec.Probes(ctx, states)
	}
}
