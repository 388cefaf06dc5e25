package agent

import (
	"context"
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

	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/logging"
	"github.com/gopatrol/gopatrol/agent/record"
	"github.com/gopatrol/gopatrol/agent/sense"
	"github.com/gopatrol/gopatrol/bpf"
	"github.com/gopatrol/gopatrol/internal/atomicfile"
	"github.com/gopatrol/gopatrol/metricdef"
	"github.com/gopatrol/gopatrol/otelcfg"
	"github.com/gopatrol/gopatrol/plugins/host"
)

// Options are what Run needs besides the config.
type Options struct {
	// Flags are the command's overrides, applied again over the file on
	// every reload.
	Flags func(*Config)
	// Once runs one cycle (resolve, detect, one patrol, one rule
	// evaluation, one cloud collection, one export) and
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
	// TracerProvider, when set, gets one span per rule patrol cycle; its
	// trace ID goes into notifications and tickets.
	TracerProvider trace.TracerProvider
	// BeforeSchedulerTick, when set, is called by the scheduler's loop
	// before each tick; a test that blocks in it stalls the loop as a
	// deadlock would, to see /healthz turn 503 (agent/soak). It must
	// return once ctx ends.
	BeforeSchedulerTick func(ctx context.Context)
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
	traces   *buildTraces
	envs     *envPatrol // nil without sensors or environments (envs.go)
	res      *resource.Resource
	sched    *Scheduler
	rules    *ruleEngine // nil without rules.dir (rules.go)
	selfRead *sdkmetric.ManualReader

	sensorsOff string // why the sensors are off, "" when attached

	hup chan os.Signal // SIGHUP, caught from Run's start; nil with --once

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
	first      *firstPatrol // the first default patrol, until a slot takes it
	exportTick time.Time
	exportErr  string
	reloads    map[string]int
}

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
	if !opts.Once {
		// Caught from the start: a SIGHUP that arrives while the daemon
		// starts (a config sidecar writes and signals at once) waits for
		// serve's loop and is a reload there; uncaught, its default
		// action would end the process.
		a.hup = make(chan os.Signal, 1)
		signal.Notify(a.hup, syscall.SIGHUP)
		defer signal.Stop(a.hup)
	}
	a.setLevel(cfg)
	// A LevelVar: SIGHUP may change the level.
	a.log = logging.New(opts.Stderr, logging.Options{Format: logging.JSON, Leveler: a.level})
	a.cfg.Store(&cfg)

	p, err := resolve(ctx, cfg, opts.Lookup)
	if err != nil {
		return err
	}
	a.plan = p
	// A SIGKILL between a state file's temporary write and its rename
	// leaves the temporary behind; nothing else would ever remove it.
	if n, err := atomicfile.RemoveLeftovers(cfg.StateDir); err != nil {
		a.log.Warn("state directory", "dir", cfg.StateDir, "err", err)
	} else if n > 0 {
		a.log.Info("state directory: removed the leftovers of interrupted writes", "dir", cfg.StateDir, "files", n)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first patrol's checks run beside detection and sensors (ready.go).
	a.startFirstPatrol(ctx)
	defer a.dropFirst()
	if opts.Once {
		return a.once(ctx)
	}
	return a.serve(ctx)
}

// once is --once: one detection, one patrol of the default set, one
// evaluation of the rules, one cloud collection, one export; the
// doctor's exit code (once.go).
func (a *agent) once(ctx context.Context) error {
	if err := a.startExport(ctx); err != nil {
		a.closePlugins()
		return err
	}
	rep := a.patrol(ctx, SetDefault)
	if err := a.onceRules(ctx); err != nil {
		a.shutdownExport(context.WithoutCancel(ctx))
		a.closePlugins()
		return err
	}
	a.onceCollect(ctx)
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

	rulesCtx, stopRules := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRules()
	if err := a.startRules(rulesCtx); err != nil {
		a.closeSensors()
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
			a.self.skipped.Add(context.Background(), 1, metric.WithAttributes(metricdef.AttrCheckSet.String(string(set))))
			a.log.Warn("patrol skipped: the previous one still runs", "set", string(set))
		})
	a.sched.beforeTick = a.opts.BeforeSchedulerTick
	schedCtx, stopSched := context.WithCancel(ctx)
	defer stopSched()
	var loops sync.WaitGroup
	loops.Add(3)
	a.up.Store(true)
	go func() { defer loops.Done(); a.sched.Loop(schedCtx, runCtx) }()
	go func() { defer loops.Done(); a.exportLoop(schedCtx) }()
	go func() { defer loops.Done(); a.collectLoop(schedCtx) }()

	a.log.Info("agent started", "version", a.opts.Version, "config", cfg.File, "host_root", cfg.HostRoot)
	for {
		select {
		case <-a.hup:
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
	stopRules()
	a.stopRules()
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

func (a *agent) closePlugins() {
	if a.plugins != nil {
		a.plugins.Close()
	}
}
