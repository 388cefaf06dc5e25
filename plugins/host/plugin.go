package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// Plugin is one supervised plugin process.
type Plugin struct {
	Name, Path string
	// SHA256 is the manifest's digest, checked by go-plugin at every exec.
	SHA256 string
	h      *Host

	mu        sync.Mutex
	proc      *proc // nil while down
	starting  bool  // a start is in flight (without mu held)
	info      sdk.Info
	lastErr   error  // why the plugin is down
	lastExit  string // how its last process ended, when it exited
	restarts  int
	crashes   int // in a row, for the backoff
	nextStart time.Time
	last      map[string]string // attributes of the last detection
	closed    bool              // Close ran: never start again
}

// Info is what the plugin said about itself at its last start (asked
// under the call deadline), or why it is not running.
func (p *Plugin) Info() (sdk.Info, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
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

// claim reports whether the caller should start the plugin now: it is
// down, its backoff has passed, nobody else is starting it and the host is
// open. A true claim must be followed by start.
func (p *Plugin) claim() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.proc != nil || p.starting || time.Now().Before(p.nextStart) {
		return false
	}
	p.starting = true
	p.h.starting.Add(1)
	return true
}

// start launches the plugin under ctx (ended early by Close) without
// holding p.mu, so that a concurrent Detect answers within its own
// deadline instead of waiting for this start.
func (p *Plugin) start(ctx context.Context) {
	defer p.h.starting.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(p.h.ctx, cancel)()
	pr, info, err := p.launch(ctx)
	p.mu.Lock()
	p.starting = false
	if err == nil && p.closed {
		p.mu.Unlock()
		pr.stop(p.h.cfg.Logger, p.Name)
		return
	}
	defer p.mu.Unlock()
	if err != nil {
		p.downLocked(err, pr.exit())
		return
	}
	if p.lastErr != nil {
		p.restarts++
	}
	p.proc, p.info, p.lastErr, p.lastExit = pr, info, nil, ""
}

// crashed stops pr if it still is the plugin's process, records why it
// went down and schedules the restart. It returns how the process ended.
func (p *Plugin) crashed(pr *proc, err error) string {
	p.mu.Lock()
	mine := p.proc == pr
	if mine {
		p.proc = nil
	}
	p.mu.Unlock()
	if !mine {
		// Someone else saw the crash first and recorded it.
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.lastExit
	}
	pr.stop(p.h.cfg.Logger, p.Name)
	exit := pr.exit()
	p.mu.Lock()
	p.downLocked(err, exit)
	p.mu.Unlock()
	return exit
}

// downLocked records a plugin that is down and schedules its restart
// with an exponential backoff. Callers hold p.mu.
func (p *Plugin) downLocked(err error, exit string) {
	if p.lastErr != nil && p.nextStart.After(time.Now()) {
		return // already scheduled
	}
	p.lastErr, p.lastExit = err, exit
	back := p.h.cfg.MinBackoff << min(p.crashes, 20)
	if back > p.h.cfg.MaxBackoff || back <= 0 {
		back = p.h.cfg.MaxBackoff
	}
	p.crashes++
	p.nextStart = time.Now().Add(back)
	p.h.cfg.Logger.Warn("probe plugin down, restarting after backoff", "plugin", p.Name, "error", err, "exit", exit, "backoff", back)
}

// stop ends the plugin's process for good (Close).
func (p *Plugin) stop() {
	p.mu.Lock()
	pr := p.proc
	p.proc, p.closed = nil, true
	p.mu.Unlock()
	if pr != nil {
		pr.stop(p.h.cfg.Logger, p.Name)
	}
}

// Result is one plugin's answer to a detection.
type Result struct {
	Plugin     string            `json:"plugin"`
	Status     sdk.Status        `json:"status"`
	Attributes map[string]string `json:"attributes,omitempty"`
	// Reason says why a probe did not detect: its own error, or why the
	// plugin is down (a crash, a refusal, a deadline).
	Reason string `json:"reason,omitempty"`
	// ExitStatus is how the plugin's process ended when it is down
	// because it exited or was killed ("exit status 2", "signal: killed").
	ExitStatus string        `json:"exit_status,omitempty"`
	Duration   time.Duration `json:"-"`
	DurationMS float64       `json:"duration_ms"`
}

// Up reports whether the probe answered: it detected its cloud or said it
// is not on it. A probe that failed, or a plugin that is down (stale), is
// not up (gopatrol.probe.up 0), and Reason says why.
func (r Result) Up() bool { return r.Status == sdk.Detected || r.Status == sdk.NotThisCloud }

// StatusStale is a plugin that is down: its last attributes stand in.
const StatusStale sdk.Status = "stale"

// down is the answer of a plugin that is not running: stale if it ever
// detected something, else an error.
func down(last map[string]string, err error, exit string) Result {
	if err == nil {
		err = errors.New("plugin not running (starting)")
	}
	if last == nil {
		return Result{Status: sdk.Failed, Reason: err.Error(), ExitStatus: exit}
	}
	return Result{Status: StatusStale, Attributes: last, Reason: err.Error(), ExitStatus: exit}
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
	if p.claim() {
		p.start(ctx)
	}
	p.mu.Lock()
	closed, pr, last, lastErr, lastExit := p.closed, p.proc, p.last, p.lastErr, p.lastExit
	p.mu.Unlock()
	if closed {
		return Result{Status: sdk.Failed, Reason: fmt.Sprintf("plugin %s: host closed", p.Name)}
	}
	if pr == nil {
		return down(last, lastErr, lastExit)
	}
	ctx, cancel := context.WithTimeout(ctx, p.h.cfg.CallTimeout)
	defer cancel()
	d, err := pr.probe.Detect(ctx)
	switch {
	case status.Code(err) == codes.Unavailable:
		// The connection broke: the process died (a panic, a kill).
		crash := fmt.Errorf("plugin %s crashed during Detect: %w", p.Name, err)
		return down(last, crash, p.crashed(pr, crash))
	case status.Code(err) == codes.DeadlineExceeded:
		return Result{Status: sdk.Failed, Reason: fmt.Sprintf("Detect: no answer within the call deadline (%v): %v", p.h.cfg.CallTimeout, err)}
	case err != nil:
		return Result{Status: sdk.Failed, Reason: fmt.Sprintf("Detect: %v", err)}
	}
	p.mu.Lock()
	p.crashes = 0
	if d.Status == sdk.Detected {
		p.last = d.Attributes
	}
	p.mu.Unlock()
	return Result{Status: d.Status, Attributes: d.Attributes, Reason: d.Reason}
}

// Collect asks the plugin for its vendor metric points under the call
// deadline. A plugin that is down answers an error; the supervisor
// restarts it.
func (p *Plugin) Collect(ctx context.Context) ([]sdk.Point, error) {
	p.mu.Lock()
	pr, lastErr := p.proc, p.lastErr
	p.mu.Unlock()
	if pr == nil {
		return nil, fmt.Errorf("plugin %s is not running: %v", p.Name, lastErr)
	}
	ctx, cancel := context.WithTimeout(ctx, p.h.cfg.CallTimeout)
	defer cancel()
	pts, err := pr.probe.Collect(ctx)
	if status.Code(err) == codes.Unavailable {
		crash := fmt.Errorf("plugin %s crashed during Collect: %w", p.Name, err)
		if exit := p.crashed(pr, crash); exit != "" {
			return nil, fmt.Errorf("%w (%s)", crash, exit)
		}
		return nil, crash
	}
	if err != nil {
		return nil, fmt.Errorf("plugin %s: Collect: %w", p.Name, err)
	}
	return pts, nil
}
