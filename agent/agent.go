package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/runtime"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/fileclass"
	"github.com/gopatrol/gopatrol/agent/logging"
	"github.com/gopatrol/gopatrol/agent/record"
	"github.com/gopatrol/gopatrol/agent/sense"
	"github.com/gopatrol/gopatrol/bpf"
	"github.com/gopatrol/gopatrol/bpf/tlsprobe"
	"github.com/gopatrol/gopatrol/otelcfg"
	"github.com/gopatrol/gopatrol/plugins/host"
)

// Options are what Run needs besides the config.
type Options struct {
	// Flags are the command's overrides, applied again over the file on
	// every reload.
	Flags func(*Config)
	// Once runs one cycle (resolve, detect, one patrol, one export) and
	// returns the doctor's exit code as an *ExitError.
	Once bool
	// Version is service.version and the scope's version.
	Version string
	// Stderr receives the JSON logs (os.Stderr).
	Stderr io.Writer
	// Clock drives the scheduler and the loops' health (the real clock).
	Clock Clock
	// Lookup reads the environment (os.LookupEnv).
	Lookup func(string) (string, bool)
	// Listening, when set, is told the endpoints' address once they serve.
	Listening func(addr string)
}

// ExitError ends Run with a process exit code: the doctor's in --once.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}
func (e *ExitError) Unwrap() error { return e.Err }

// ExitExport is --once's code when every check passed but the export
// failed, as for `check --export`.
const ExitExport = 3

// agent is one running agent.
type agent struct {
	opts    Options
	log     *slog.Logger
	level   *slog.LevelVar
	clock   Clock
	plan    *plan
	cfg     atomic.Pointer[Config]
	started time.Time

	provider *otelcfg.Provider
	rec      *record.Recorder
	self     selfInstruments
	plugins  *host.Host
	sensor   *bpf.Sensor
	agg      *sense.Aggregator
	sched    *Scheduler

	sensorsOff string // why the sensors are off, "" when attached

	// up is set once every part above is in place; the endpoints read
	// those fields only after it (they serve from the start).
	up atomic.Bool

	mu         sync.Mutex
	lastReport *check.Report
	lastSet    CheckSet
	lastRun    time.Time
	probes     []record.ProbeState
	detection  *host.Report
	ready      bool
	exportTick time.Time
	exportErr  string
	reloads    map[string]int
}

// selfInstruments are the agent's own counters; the runtime
// instrumentation adds the process's CPU, memory and Go runtime.
type selfInstruments struct {
	exportFailures metric.Int64Counter
	reloads        metric.Int64Counter
	skipped        metric.Int64Counter
}

// Self-telemetry instruments of the agent (docs/agent.md).
const (
	MetricExportFailures = "gopatrol.agent.export.failures"
	MetricReloads        = "gopatrol.agent.reloads"
	MetricPatrolsSkipped = "gopatrol.agent.patrols.skipped"
)

// Run resolves cfg, starts the agent and runs it until ctx ends or SIGTERM
// or SIGINT arrives, then stops it within cfg.ShutdownTimeout. A config
// that cannot run is a *ConfigError before anything started.
func Run(ctx context.Context, cfg Config, opts Options) error {
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Lookup == nil {
		opts.Lookup = os.LookupEnv
	}
	a := &agent{opts: opts, clock: opts.Clock, level: new(slog.LevelVar), reloads: map[string]int{}, started: opts.Clock.Now()}
	a.setLevel(cfg)
	// A LevelVar: SIGHUP may change the level.
	a.log = logging.New(opts.Stderr, logging.Options{Format: logging.JSON, Leveler: a.level})
	a.cfg.Store(&cfg)

	p, err := resolve(ctx, cfg, opts.Lookup)
	if err != nil {
		return err
	}
	a.plan = p

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if opts.Once {
		return a.once(ctx)
	}
	return a.serve(ctx)
}

// startExport detects the node through the plugins (bounded by the probe
// deadline), builds the resource and the meter provider. The provider
// comes after the plugins because a resource cannot change once the SDK
// has it, and the first export must carry cloud.*.
func (a *agent) startExport(ctx context.Context) error {
	cfg := a.plan.cfg
	var detectors []otelcfg.Detector
	if cfg.Plugins.Dir != "" {
		h, err := host.Open(host.Config{Dir: cfg.Plugins.Dir, Logger: a.log, PluginLog: a.opts.Stderr})
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
	oc := a.plan.otel
	// The agent's export loop flushes every interval (and so knows when
	// an export failed); the SDK's periodic reader is only a backstop.
	oc.Interval = 24 * time.Hour
	a.provider, err = otelcfg.New(ctx, oc, res, otelcfg.Options{
		Console: a.opts.Stderr, Version: a.opts.Version, Logger: a.log,
		MeterOptions: []sdkmetric.Option{sdkmetric.WithCardinalityLimit(cfg.Metrics.CardinalityLimit)},
	})
	if err != nil {
		return &ConfigError{Key: "environment", Msg: err.Error()}
	}
	if a.rec, err = record.New(a.provider.Meter()); err != nil {
		return err
	}
	m := a.provider.Meter()
	a.self.exportFailures, _ = m.Int64Counter(MetricExportFailures, metric.WithUnit("{export}"),
		metric.WithDescription("Exports of the agent's metrics that failed."))
	a.self.reloads, _ = m.Int64Counter(MetricReloads, metric.WithUnit("{reload}"),
		metric.WithDescription("Config reloads on SIGHUP, by result (ok, failed)."))
	a.self.skipped, _ = m.Int64Counter(MetricPatrolsSkipped, metric.WithUnit("{patrol}"),
		metric.WithDescription("Scheduled patrols skipped because another was still running, by check set."))
	if err := runtime.Start(runtime.WithMeterProvider(a.provider.MeterProvider())); err != nil {
		a.log.Warn("runtime metrics off", "err", err)
	}
	a.log.Info("export ready", "endpoint", a.provider.Endpoint(), "interval", a.interval().String())
	return nil
}

// setLevel applies cfg's (validated) log level.
func (a *agent) setLevel(cfg Config) {
	o, _ := logging.Parse("json", cfg.Log.Level)
	a.level.Set(o.Level)
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

// once is --once: one detection, one patrol of the default set, one
// export; the doctor's exit code.
func (a *agent) once(ctx context.Context) error {
	if err := a.startExport(ctx); err != nil {
		a.closePlugins()
		return err
	}
	rep := a.patrol(ctx, SetDefault)
	a.recordProbes(ctx)
	code := rep.ExitCode(false)
	err := a.shutdownExport(context.WithoutCancel(ctx))
	a.closePlugins()
	if err != nil {
		a.log.Error("export failed", "err", err)
		if code == check.ExitOK {
			code = ExitExport
		}
	}
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

// serve is the daemon: start in order, run until ctx ends, stop in
// reverse order.
func (a *agent) serve(ctx context.Context) error {
	cfg := a.plan.cfg
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return &ConfigError{File: cfg.File, Key: "listen", Msg: err.Error()}
	}
	srv := &http.Server{Handler: a.mux(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	a.log.Info("endpoints listening", "addr", ln.Addr().String())
	if a.opts.Listening != nil {
		a.opts.Listening(ln.Addr().String())
	}

	if err := a.startExport(ctx); err != nil {
		a.closePlugins()
		return err
	}
	if err := a.startSensors(); err != nil {
		a.shutdownExport(context.WithoutCancel(ctx))
		a.closePlugins()
		return err
	}

	// Patrols get their own context: on SIGTERM they have the grace
	// period to finish before it is cancelled.
	runCtx, cancelRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRuns()
	a.sched = NewScheduler(a.clock, a.schedule(cfg), func(ctx context.Context, set CheckSet) { a.patrol(ctx, set) },
		func(set CheckSet) {
			a.self.skipped.Add(context.Background(), 1, metric.WithAttributes(attribute.String("gopatrol.check.set", string(set))))
			a.log.Warn("patrol skipped: the previous one still runs", "set", string(set))
		})
	schedCtx, stopSched := context.WithCancel(ctx)
	defer stopSched()
	var loops sync.WaitGroup
	loops.Add(2)
	a.up.Store(true)
	go func() { defer loops.Done(); a.sched.Loop(schedCtx, runCtx) }()
	go func() { defer loops.Done(); a.exportLoop(schedCtx) }()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	a.log.Info("agent started", "version", a.opts.Version, "config", cfg.File, "host_root", cfg.HostRoot)
	for {
		select {
		case <-hup:
			a.reload()
			continue
		case <-ctx.Done():
		}
		break
	}

	// Stop in reverse order, within the shutdown timeout.
	cur := a.cfg.Load()
	a.log.Info("stopping", "grace", cur.Checks.Grace.String())
	deadline := time.Now().Add(cur.ShutdownTimeout)
	stopSched()
	loops.Wait()
	patrolsDone := make(chan struct{})
	go func() { a.sched.Wait(); close(patrolsDone) }()
	select {
	case <-patrolsDone:
	case <-time.After(cur.Checks.Grace):
		a.log.Warn("running checks cancelled after the grace period")
		cancelRuns()
		<-patrolsDone
	}
	a.closeSensors()
	a.recordProbes(context.Background())
	fctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	err = a.shutdownExport(fctx)
	if err != nil {
		a.log.Error("final flush failed", "err", err)
	}
	a.closePlugins()
	a.log.Info("stopped")
	return nil
}

func (a *agent) schedule(cfg Config) Schedule {
	return Schedule{Every: cfg.Checks.Every, FullAt: cfg.Checks.FullAt, Splay: Splay(a.hostID(), cfg.Checks.FullSplay)}
}

// hostID is the identity the splay hashes: the machine-id of the host
// root, else the host name.
func (a *agent) hostID() string {
	if b, err := os.ReadFile(a.plan.target.Path("/etc/machine-id")); err == nil && len(b) > 0 {
		return string(b)
	}
	h, _ := os.Hostname()
	return h
}

// startSensors attaches the eBPF sensors and the TLS probes. Without BPF
// the agent degrades ("sensors off", with why) unless sensors.require.
func (a *agent) startSensors() error {
	cfg := a.plan.cfg
	if !cfg.Sensors.Enabled {
		a.sensorsOff = "disabled by config (sensors.enabled: false)"
		a.log.Warn("sensors off", "reason", a.sensorsOff)
		return nil
	}
	bc := bpf.Config{
		GoNames: cfg.Sensors.GoNames, Classes: fileclass.Of(a.plan.toolchain),
		RingSize: cfg.Sensors.RingSize, RunTime: cfg.Sensors.RunTime, Logger: a.log,
	}
	if cfg.HostRoot != "/" && a.plan.toolchain.Err == nil {
		// Uprobes attach by inode: the host's go, reached through the
		// mount, is the file the host's processes run.
		bc.GoTools = bpf.ToolchainBinaries(a.plan.target.Path(a.plan.toolchain.Go))
	}
	s, err := bpf.Open(bc)
	if err != nil {
		if cfg.Sensors.Require {
			return fmt.Errorf("sensors required (sensors.require / --require-sensors) but not available: %w", err)
		}
		a.sensorsOff = err.Error()
		a.log.Warn("sensors off", "reason", a.sensorsOff)
		return nil
	}
	a.sensor = s
	if cfg.Sensors.TLS {
		p, err := tlsprobe.Attach(s, tlsprobe.Config{Logger: a.log})
		if err != nil {
			a.log.Warn("TLS handshakes not observed", "err", err)
		} else {
			for _, sk := range p.Skipped {
				a.log.Warn("TLS probe not attached", "path", sk.Path, "reason", sk.Reason)
			}
		}
	}
	a.agg = sense.New(a.rec.Instruments(), a.log)
	go a.agg.Run(context.Background(), s.Events())
	a.log.Info("sensors attached", "go_tools", len(s.GoTools()))
	return nil
}

// closeSensors detaches every program (no program, link or map of the
// agent stays in the kernel) and records the last counters.
func (a *agent) closeSensors() {
	if a.sensor == nil {
		return
	}
	if st, err := a.sensor.Stats(); err == nil {
		a.agg.Counters(context.Background(), st)
	}
	if err := a.sensor.Close(); err != nil {
		a.log.Error("sensors: detach", "err", err)
	}
}

func (a *agent) closePlugins() {
	if a.plugins != nil {
		a.plugins.Close()
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

// patrol runs one check set and records it.
func (a *agent) patrol(ctx context.Context, set CheckSet) check.Report {
	cfg := a.cfg.Load()
	start := time.Now()
	env := &check.Env{Target: a.plan.target, Toolchain: a.plan.toolchain}
	results := check.Runner{Timeout: cfg.Checks.Timeout}.Run(ctx, env, a.checks(set, cfg))
	rep := check.NewReport(a.plan.toolchain, results)
	a.rec.Report(context.WithoutCancel(ctx), rep)
	a.mu.Lock()
	a.lastReport, a.lastSet, a.lastRun = &rep, set, a.clock.Now()
	a.ready = true
	a.mu.Unlock()
	a.log.Info("patrol done", "set", string(set), "duration", time.Since(start).Round(time.Millisecond).String(),
		"pass", rep.Summary[check.Pass], "warn", rep.Summary[check.Warn], "fail", rep.Summary[check.Fail],
		"error", rep.Summary[check.Error], "skip", rep.Summary[check.Skip])
	return rep
}

// checks are the set's checks under the current config's skip list.
func (a *agent) checks(set CheckSet, cfg *Config) []check.Check {
	var out []check.Check
	for _, c := range a.plan.sets[set] {
		skip := false
		for _, id := range cfg.Checks.Skip {
			skip = skip || id == c.ID
		}
		if !skip {
			out = append(out, c)
		}
	}
	return out
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
		rep := a.plugins.Detect(ctx)
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
		a.self.exportFailures.Add(ctx, 1, metric.WithAttributes(semconv.ErrorTypeKey.String(exportErrorType(err))))
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

// reload re-reads the config file on SIGHUP. The new config replaces the
// old one as a whole or not at all; keys that only take effect at start
// are reported as needing a restart.
func (a *agent) reload() {
	old := a.cfg.Load()
	next, err := Load(old.File, a.opts.Flags)
	result := "ok"
	if err != nil {
		result = "failed"
		a.log.Error("reload refused; the running config stays", "err", err)
	} else {
		if restart := restartKeys(*old, next); len(restart) > 0 {
			a.log.Warn("reload: these keys take effect at the next start", "keys", restart)
		}
		a.setLevel(next)
		a.cfg.Store(&next)
		a.sched.SetSchedule(a.schedule(next))
		a.log.Info("config reloaded", "config", next.File)
	}
	a.mu.Lock()
	a.reloads[result]++
	a.mu.Unlock()
	a.self.reloads.Add(context.Background(), 1, metric.WithAttributes(attribute.String("gopatrol.reload.result", result)))
}

// restartKeys names the keys that differ and are read only at start.
func restartKeys(old, next Config) []string {
	var keys []string
	add := func(changed bool, key string) {
		if changed {
			keys = append(keys, key)
		}
	}
	add(old.Listen != next.Listen, "listen")
	add(old.HostRoot != next.HostRoot, "host_root")
	add(old.Go != next.Go, "go")
	add(old.Checks.Dir != next.Checks.Dir || old.Checks.AsUser != next.Checks.AsUser, "checks.dir/as_user")
	add(fmt.Sprint(old.Sensors) != fmt.Sprint(next.Sensors), "sensors")
	add(old.Plugins != next.Plugins, "plugins")
	add(old.K8s != next.K8s, "kubernetes")
	add(old.Metrics != next.Metrics, "metrics")
	return keys
}
