package agent

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/gopatrol/gopatrol/agent/buildtrace"
	"github.com/gopatrol/gopatrol/bpf"
	"github.com/gopatrol/gopatrol/otelcfg"
)

// TracesConfig shapes the build traces (docs/traces.md): each go
// invocation tree the sensors see becomes one trace, sampled at its end.
// Where spans go is OTEL_TRACES_EXPORTER's and OTEL_EXPORTER_OTLP_*'s.
type TracesConfig struct {
	Enabled bool `yaml:"enabled"`
	// Slow keeps every build at least this long.
	Slow time.Duration `yaml:"slow"`
	// Share is the fraction of other successful builds kept (0 to 1).
	Share float64 `yaml:"share"`
	// MaxOpen bounds the open trees; MaxAge closes a tree that has not
	// ended after it.
	MaxOpen int           `yaml:"max_open"`
	MaxAge  time.Duration `yaml:"max_age"`
	// Paths puts the path of a file-access failure on its span event.
	Paths bool `yaml:"paths"`
}

// DefaultTraces are the build-trace defaults.
func DefaultTraces() TracesConfig {
	return TracesConfig{Enabled: true, Slow: buildtrace.DefaultSlow, Share: buildtrace.DefaultShare,
		MaxOpen: buildtrace.DefaultMaxOpen, MaxAge: buildtrace.DefaultMaxAge}
}

func (c TracesConfig) validate(file string) error {
	bad := func(key, format string, a ...any) error {
		return &ConfigError{File: file, Key: "traces." + key, Msg: fmt.Sprintf(format, a...)}
	}
	switch {
	case c.Slow <= 0:
		return bad("slow", "%v: want a positive duration", c.Slow)
	case c.Share < 0 || c.Share > 1:
		return bad("share", "%v: want a fraction from 0 to 1", c.Share)
	case c.MaxOpen < 1 || c.MaxOpen > 1_000_000:
		return bad("max_open", "%d: want from 1 to 1000000 open trees", c.MaxOpen)
	case c.MaxAge < time.Second:
		return bad("max_age", "%v: want a duration of at least 1s", c.MaxAge)
	}
	return nil
}

// buildTraces is the agent's build-trace pipeline.
type buildTraces struct {
	b     *buildtrace.Builder
	tp    *otelcfg.TracerProvider
	clock buildtrace.Clock
}

// startBuildTraces builds the tracer provider of OTEL_TRACES_EXPORTER
// and a Builder that emits each kept build through it. Nothing starts
// when traces are disabled or the exporter is none.
func (a *agent) startBuildTraces(res *resource.Resource) error {
	cfg := a.plan.cfg
	if !cfg.Traces.Enabled || a.sensor == nil {
		return nil
	}
	tc, err := otelcfg.TracesFromEnv(a.opts.Lookup)
	if err != nil {
		return &ConfigError{Key: "environment", Msg: err.Error()}
	}
	if len(tc.Exporters) == 0 {
		a.log.Info("build traces off", "reason", "OTEL_TRACES_EXPORTER=none")
		return nil
	}
	// Each build goes out when it ends (buildtrace.TraceBatcher), not on
	// the batch processor's timer, which costs the agent CPU between builds.
	log := a.log
	tp, err := otelcfg.NewTracerProvider(context.Background(), tc, res, otelcfg.Options{Console: a.opts.Stderr, Version: a.opts.Version,
		SpanProcessor: func(exp sdktrace.SpanExporter) sdktrace.SpanProcessor { return buildtrace.NewTraceBatcher(exp, log) }})
	if err != nil {
		return &ConfigError{Key: "environment", Msg: err.Error()}
	}
	bt := &buildTraces{tp: tp, clock: buildtrace.NewClock()}
	tracer := tp.Tracer()
	bt.b = buildtrace.New(buildtrace.Config{
		GoNames: cfg.Sensors.GoNames, MaxOpen: cfg.Traces.MaxOpen, MaxAge: cfg.Traces.MaxAge,
		Slow: cfg.Traces.Slow, Share: shareOrNone(cfg.Traces.Share), Paths: cfg.Traces.Paths,
		Instruments: a.rec.Instruments(), Logger: a.log,
	}, func(b *buildtrace.Build) { buildtrace.Emit(context.Background(), tracer, bt.clock, b) })
	a.traces = bt
	a.log.Info("build traces on", "endpoint", tp.Endpoint())
	return nil
}

// shareOrNone maps the config's 0 (keep no unremarkable build) to the
// Builder's "none", since its 0 means the default.
func shareOrNone(s float64) float64 {
	if s == 0 {
		return -1
	}
	return s
}

// withBuildTraces returns the events the aggregator reads: events itself
// without build traces, else a channel fed after the Builder has seen
// each event. The Builder's sweep of trees past max_age runs here too.
func (a *agent) withBuildTraces(events <-chan bpf.Event) <-chan bpf.Event {
	if a.traces == nil {
		return events
	}
	out := make(chan bpf.Event, cap(events))
	b := a.traces.b
	sweep := time.NewTicker(min(a.plan.cfg.Traces.MaxAge/4, time.Minute))
	go func() {
		defer close(out)
		defer sweep.Stop()
		for {
			select {
			case <-sweep.C:
				b.Sweep(buildtrace.Monotonic())
			case ev, ok := <-events:
				if !ok {
					return
				}
				b.Event(ev)
				out <- ev
			}
		}
	}()
	return out
}

// stopBuildTraces sends the spans still queued, within half the
// shutdown timeout (the metrics' final flush needs the rest).
func (a *agent) stopBuildTraces(ctx context.Context) {
	if a.traces == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, a.plan.cfg.ShutdownTimeout/2)
	defer cancel()
	if err := a.traces.tp.Shutdown(ctx); err != nil {
		a.log.Error("build traces: final flush", "err", err)
	}
}
