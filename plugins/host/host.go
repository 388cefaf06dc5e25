package host

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// PluginMaxProcs is the GOMAXPROCS the host gives every plugin process,
// unless Config.Env sets another. A probe is a small server that mostly
// waits on the network, and each P of a Go runtime holds memory of its
// own (allocation caches, the collector's per-P workers and buffers).
// Measured on the built-in probes (docs/benchmarks.md, #11): 2.8 MiB of
// anonymous memory each with 1 P, 3.1 with 2 and 6.4 with 64, the
// runtime's choice on a 64-CPU node outside a CPU-limited cgroup. It is
// set in the environment, not by the plugin once running: the runtime
// sizes itself at start, and a runtime.GOMAXPROCS call in the plugin's
// main measured no gain with 2 CPUs and only a third of it with 64.
const PluginMaxProcs = 1

// Config says where the plugins are and how patient to be with them.
type Config struct {
	// Dir is the plugin directory (DefaultDir when empty).
	Dir string
	// Manifest is the checksum file (Dir/SHA256SUMS when empty).
	Manifest string
	// Owners are the uids that may own the plugins (DefaultOwners()).
	Owners []int
	// StartTimeout bounds a plugin's start up to its Info answer (5 s).
	StartTimeout time.Duration
	// CallTimeout is the deadline on every call to a plugin (2 s).
	CallTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before restarting a
	// crashed plugin; it doubles with each crash in a row (100 ms, 30 s).
	MinBackoff, MaxBackoff time.Duration
	// Env is added to the plugins' environment (which otherwise is the
	// agent's, so the endpoint overrides reach them, plus GOMAXPROCS set
	// to PluginMaxProcs, which Env may override).
	Env []string
	// Logger gets the host's own logs (slog.Default()); PluginLog gets
	// go-plugin's and the plugins' stderr as hclog JSON (os.Stderr, at
	// PluginLogLevel, warn by default).
	Logger         *slog.Logger
	PluginLog      io.Writer
	PluginLogLevel hclog.Level
}

func (c *Config) defaults() {
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 5 * time.Second
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 2 * time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.PluginLog == nil {
		c.PluginLog = os.Stderr
	}
	if c.PluginLogLevel == hclog.NoLevel {
		c.PluginLogLevel = hclog.Warn
	}
}

// Host runs the verified plugins of one directory.
type Host struct {
	cfg     Config
	found   []Candidate
	plugins []*Plugin

	// ctx ends at Close: it aborts the starts in flight.
	ctx    context.Context
	cancel context.CancelFunc
	// supervisor is the supervise loop; starting counts the starts in
	// flight, which Close waits for so that none leaves a process behind.
	supervisor sync.WaitGroup
	starting   sync.WaitGroup
	once       sync.Once
}

// Open discovers and verifies the plugins of cfg.Dir and starts every
// verified one, in parallel, under ctx (and each under the start timeout).
// A plugin that fails to start stays in the list with its error, and the
// supervisor keeps trying.
func Open(ctx context.Context, cfg Config) (*Host, error) {
	cfg.defaults()
	found, err := discover(cfg.Dir, cfg.Manifest, cfg.Owners, false)
	if err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, found: found}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	for _, c := range found {
		if c.Verified() {
			h.plugins = append(h.plugins, &Plugin{Name: c.Name, Path: c.Path, SHA256: c.Expected, h: h})
		}
	}
	var wg sync.WaitGroup
	for _, p := range h.plugins {
		if p.claim() {
			wg.Go(func() { p.start(ctx) })
		}
	}
	wg.Wait()
	h.supervisor.Go(h.supervise)
	return h, nil
}

// Found is every candidate of the directory, verified or refused.
func (h *Host) Found() []Candidate { return h.found }

// Plugins are the verified plugins.
func (h *Host) Plugins() []*Plugin { return h.plugins }

// Close stops every plugin and waits for them: each plugin's whole process
// group is killed, so no child, nor anything a plugin forked, is left. It
// returns in bounded time even if a plugin's output is held open.
func (h *Host) Close() {
	h.once.Do(func() {
		for _, p := range h.plugins {
			p.mu.Lock()
			p.closed = true
			p.mu.Unlock()
		}
		h.cancel()
		h.supervisor.Wait()
		h.starting.Wait()
		var wg sync.WaitGroup
		for _, p := range h.plugins {
			wg.Go(p.stop)
		}
		wg.Wait()
	})
}

// supervise reaps plugins that exited and restarts them once their backoff
// has passed, so a plugin is back before the next scheduled detection
// needs it. Starts run beside the loop, never under a plugin's lock.
func (h *Host) supervise() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range h.plugins {
			p.mu.Lock()
			pr := p.proc
			p.mu.Unlock()
			if pr != nil && pr.client.Exited() {
				p.crashed(pr, fmt.Errorf("plugin %s exited", p.Name))
			}
			if p.claim() {
				go p.start(h.ctx)
			}
		}
	}
}
