package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// Config says where the plugins are and how patient to be with them.
type Config struct {
	// Dir is the plugin directory (DefaultDir when empty).
	Dir string
	// Manifest is the checksum file (Dir/SHA256SUMS when empty).
	Manifest string
	// Owners are the uids that may own the plugins (DefaultOwners()).
	Owners []int
	// StartTimeout bounds a plugin's start up to the handshake (5 s).
	StartTimeout time.Duration
	// CallTimeout is the deadline on every call to a plugin (2 s).
	CallTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before restarting a
	// crashed plugin; it doubles with each crash in a row (100 ms, 30 s).
	MinBackoff, MaxBackoff time.Duration
	// Env is added to the plugins' environment (which otherwise is the
	// agent's, so the endpoint overrides reach them).
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
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

// Open discovers and verifies the plugins of cfg.Dir and starts every
// verified one, in parallel. A plugin that fails to start stays in the
// list with its error, and the supervisor keeps trying.
func Open(cfg Config) (*Host, error) {
	cfg.defaults()
	found, err := discover(cfg.Dir, cfg.Manifest, cfg.Owners, false)
	if err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, found: found, stop: make(chan struct{})}
	for _, c := range found {
		if c.Verified() {
			h.plugins = append(h.plugins, &Plugin{Name: c.Name, Path: c.Path, SHA256: c.Expected, cfg: &h.cfg})
		}
	}
	var wg sync.WaitGroup
	for _, p := range h.plugins {
		wg.Go(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if err := p.start(); err != nil {
				p.crashedLocked(err)
			}
		})
	}
	wg.Wait()
	h.wg.Go(h.supervise)
	return h, nil
}

// Found is every candidate of the directory, verified or refused.
func (h *Host) Found() []Candidate { return h.found }

// Plugins are the verified plugins.
func (h *Host) Plugins() []*Plugin { return h.plugins }

// Close kills every plugin and waits for them: no child is left.
func (h *Host) Close() {
	h.once.Do(func() { close(h.stop) })
	h.wg.Wait()
	var wg sync.WaitGroup
	for _, p := range h.plugins {
		wg.Go(p.kill)
	}
	wg.Wait()
}

// supervise restarts crashed plugins once their backoff has passed, so a
// plugin is back before the next scheduled detection needs it.
func (h *Host) supervise() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		for _, p := range h.plugins {
			p.mu.Lock()
			if p.client != nil && p.client.Exited() {
				p.crashedLocked(fmt.Errorf("plugin %s exited", p.Name))
			}
			if p.client == nil && !time.Now().Before(p.nextStart) {
				if err := p.start(); err != nil {
					p.crashedLocked(err)
				}
			}
			p.mu.Unlock()
		}
	}
}

// Plugin is one supervised plugin process.
type Plugin struct {
	Name, Path string
	// SHA256 is the manifest's digest, checked by go-plugin at every exec.
	SHA256 string
	cfg    *Config

	mu        sync.Mutex
	client    *plugin.Client
	probe     *sdk.Client
	info      sdk.Info
	lastErr   error
	restarts  int
	crashes   int // in a row, for the backoff
	nextStart time.Time
	last      map[string]string // attributes of the last detection
	closed    bool              // Close ran: never start again
}

// Info is what the plugin said about itself at its last start.
func (p *Plugin) Info() (sdk.Info, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil {
		return p.info, p.lastErr
	}
	return p.info, nil
}

// Restarts counts the restarts after a crash.
func (p *Plugin) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// start launches the plugin and asks for its Info. Callers hold p.mu.
func (p *Plugin) start() error {
	sum, _ := hex.DecodeString(p.SHA256)
	cmd := exec.Command(p.Path)
	// Later entries win in exec; go-plugin would append the agent's
	// environment after ours, so it is skipped there and put first here.
	cmd.Env = append(append(os.Environ(), p.cfg.Env...), sdk.EnvHostPID+"="+strconv.Itoa(os.Getpid()))
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.PluginSet(nil),
		Cmd:              cmd,
		SecureConfig:     &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     p.cfg.StartTimeout,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "plugin." + p.Name, Output: p.cfg.PluginLog, Level: p.cfg.PluginLogLevel, JSONFormat: true,
		}),
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return p.startError(err)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		client.Kill()
		return fmt.Errorf("plugin %s: %w", p.Path, err)
	}
	probe, ok := raw.(*sdk.Client)
	if !ok {
		client.Kill()
		return fmt.Errorf("plugin %s: dispensed %T, not a probe", p.Path, raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.CallTimeout)
	defer cancel()
	info, err := probe.Info(ctx)
	if err != nil {
		client.Kill()
		return fmt.Errorf("plugin %s: Info: %w", p.Path, err)
	}
	if p.client != nil || p.lastErr != nil {
		p.restarts++
	}
	p.client, p.probe, p.info, p.lastErr = client, probe, info, nil
	return nil
}

// startError turns go-plugin's start errors into what the user must fix.
func (p *Plugin) startError(err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		return refuse("plugin %s: its sha256 differs from the manifest's %s: the binary was changed or the manifest is stale", p.Path, p.SHA256)
	case strings.HasPrefix(msg, "Unrecognized remote plugin message: "):
		line, _, _ := strings.Cut(strings.TrimPrefix(msg, "Unrecognized remote plugin message: "), "\n")
		return fmt.Errorf("plugin %s wrote %q to stdout before the go-plugin handshake: a plugin must keep stdout for the handshake and log to stderr (sdk.Serve does both)", p.Path, line)
	}
	return fmt.Errorf("plugin %s: %w", p.Path, err)
}

// crashedLocked records a dead plugin and schedules its restart with an
// exponential backoff. Callers hold p.mu.
func (p *Plugin) crashedLocked(err error) {
	if p.client != nil {
		p.client.Kill()
		p.client, p.probe = nil, nil
	}
	if p.lastErr != nil && p.nextStart.After(time.Now()) {
		return // already scheduled
	}
	p.lastErr = err
	back := p.cfg.MinBackoff << min(p.crashes, 20)
	if back > p.cfg.MaxBackoff || back <= 0 {
		back = p.cfg.MaxBackoff
	}
	p.crashes++
	p.nextStart = time.Now().Add(back)
	p.cfg.Logger.Warn("probe plugin down, restarting after backoff", "plugin", p.Name, "error", err, "backoff", back)
}

func (p *Plugin) kill() {
	p.mu.Lock()
	c := p.client
	p.client, p.probe, p.closed = nil, nil, true
	p.mu.Unlock()
	if c != nil {
		c.Kill()
	}
}

// Result is one plugin's answer to a detection.
type Result struct {
	Plugin     string            `json:"plugin"`
	Status     string            `json:"status"` // detected, not_this_cloud, error, stale
	Attributes map[string]string `json:"attributes,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	Duration   time.Duration     `json:"-"`
	DurationMS float64           `json:"duration_ms"`
}

// StatusStale is a plugin that is down: its last attributes stand in.
const StatusStale = "stale"

// down is the answer of a plugin that is not running: stale if it ever
// detected something, else an error.
func down(last map[string]string, err error) Result {
	if err == nil {
		err = errors.New("plugin not running")
	}
	if last == nil {
		return Result{Status: "error", Reason: err.Error()}
	}
	return Result{Status: StatusStale, Attributes: last, Reason: err.Error()}
}

// Detect calls the plugin's Detect under ctx and the call deadline. A
// plugin that crashed or is restarting answers StatusStale with the
// attributes of its last good detection.
func (p *Plugin) Detect(ctx context.Context) Result {
	start := time.Now()
	r := p.detect(ctx)
	r.Plugin, r.Duration = p.Name, time.Since(start)
	r.DurationMS = float64(r.Duration.Microseconds()) / 1000
	return r
}

func (p *Plugin) detect(ctx context.Context) Result {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return Result{Status: "error", Reason: fmt.Sprintf("plugin %s: host closed", p.Name)}
	}
	if p.client == nil && !time.Now().Before(p.nextStart) {
		if err := p.start(); err != nil {
			p.crashedLocked(err)
		}
	}
	probe, last, lastErr := p.probe, p.last, p.lastErr
	p.mu.Unlock()
	if probe == nil {
		return down(last, lastErr)
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CallTimeout)
	defer cancel()
	d, err := probe.Detect(ctx)
	if err != nil {
		if status.Code(err) == codes.Unavailable {
			// The connection broke: the process died (a panic, a kill).
			crash := fmt.Errorf("plugin %s crashed during Detect: %w", p.Name, err)
			p.mu.Lock()
			if p.probe == probe {
				p.crashedLocked(crash)
			}
			p.mu.Unlock()
			return down(last, crash)
		}
		if status.Code(err) == codes.DeadlineExceeded {
			return Result{Status: string(sdk.Failed), Reason: fmt.Sprintf("Detect: no answer within the call deadline (%v): %v", p.cfg.CallTimeout, err)}
		}
		return Result{Status: string(sdk.Failed), Reason: fmt.Sprintf("Detect: %v", err)}
	}
	p.mu.Lock()
	p.crashes = 0
	if d.Status == sdk.Detected {
		p.last = d.Attributes
	}
	p.mu.Unlock()
	return Result{Status: string(d.Status), Attributes: d.Attributes, Reason: d.Reason}
}

// Collect asks the plugin for its vendor metric points under the call
// deadline. A plugin that is down answers an error; the supervisor
// restarts it.
func (p *Plugin) Collect(ctx context.Context) ([]sdk.Point, error) {
	p.mu.Lock()
	probe, lastErr := p.probe, p.lastErr
	p.mu.Unlock()
	if probe == nil {
		return nil, fmt.Errorf("plugin %s is not running: %v", p.Name, lastErr)
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CallTimeout)
	defer cancel()
	pts, err := probe.Collect(ctx)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: Collect: %w", p.Name, err)
	}
	return pts, nil
}
