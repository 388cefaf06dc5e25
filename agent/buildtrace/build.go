package buildtrace

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/gopatrol/gopatrol/bpf"
	"github.com/gopatrol/gopatrol/bpf/tlsprobe"
	"github.com/gopatrol/gopatrol/metricdef"
)

// Defaults of Config.
const (
	DefaultMaxOpen = 1024
	DefaultMaxAge  = time.Hour
	DefaultSlow    = time.Minute
	DefaultShare   = 0.1
	// DefaultTopPackages is how many slowest packages the root span names.
	DefaultTopPackages = 5
)

// Config shapes a Builder. The zero value takes every default.
type Config struct {
	// GoNames are the executable names of go commands (default {"go"}).
	GoNames []string
	// MaxOpen bounds the open trees; past it the oldest is dropped and
	// counted (Stats.Overflow, gopatrol.build.trees.overflow).
	MaxOpen int
	// MaxAge closes a tree that has not ended this long after its go
	// command's exec (Sweep); the build is kept and marked incomplete.
	MaxAge time.Duration
	// Slow keeps every build at least this long.
	Slow time.Duration
	// Share is the fraction (0..1) of the other successful builds kept.
	// Negative keeps none; use KeepAll for every build.
	Share float64
	// KeepAll keeps every build (gopatrol trace --builds).
	KeepAll bool
	// Paths puts the path of a file-access failure on its span event.
	Paths bool
	// TopPackages is how many slowest compiled packages the root names.
	TopPackages int
	// Instruments, when set, get the critical-path histogram and the
	// overflow counter.
	Instruments *metricdef.Instruments
	Logger      *slog.Logger
}

func (c Config) withDefaults() Config {
	if len(c.GoNames) == 0 {
		c.GoNames = []string{"go"}
	}
	if c.MaxOpen <= 0 {
		c.MaxOpen = DefaultMaxOpen
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Slow <= 0 {
		c.Slow = DefaultSlow
	}
	if c.Share == 0 {
		c.Share = DefaultShare
	}
	if c.TopPackages <= 0 {
		c.TopPackages = DefaultTopPackages
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Stats count what the Builder did.
type Stats struct {
	Open     int    `json:"open"`
	Finished uint64 `json:"finished"`
	Kept     uint64 `json:"kept"`
	Expired  uint64 `json:"expired"`
	Overflow uint64 `json:"overflow"`
	// Orphans are events of a tree the Builder had no entry for (its go
	// command started before the sensors, or the tree was dropped).
	Orphans uint64 `json:"orphans"`
	// Malformed are events skipped because they made the Builder panic.
	Malformed uint64 `json:"malformed"`
}

// Sink receives every kept build, on the goroutine whose Event or Sweep
// ended it, after the Builder's lock is released: a slow export does not
// hold up other goroutines' events (it does hold up its caller's).
type Sink func(*Build)

// Builder assembles builds from sensor events. Its methods may be called
// from several goroutines.
type Builder struct {
	cfg     Config
	goNames map[string]bool
	sink    Sink
	cgroups *Cgroups

	mu      sync.Mutex
	trees   map[uint32]*tree
	pending []*Build // kept, not yet given to the sink
	credit  float64  // sampling: Share accumulated per unremarkable build
	st      Stats
}

// tree is one open go invocation tree.
type tree struct {
	root  *Span
	procs map[uint32]*Span // live process spans by pid
	build *Build
}

// New returns a Builder that gives every kept build to sink.
func New(cfg Config, sink Sink) *Builder {
	cfg = cfg.withDefaults()
	b := &Builder{cfg: cfg, sink: sink, trees: map[uint32]*tree{}, goNames: map[string]bool{}, cgroups: NewCgroups("")}
	for _, n := range cfg.GoNames {
		b.goNames[n] = true
	}
	return b
}

// Run feeds every event of events to the Builder until it is closed or
// ctx ends, and sweeps expired trees every sweep interval.
func (b *Builder) Run(ctx context.Context, events <-chan bpf.Event, now func() time.Duration) {
	tick := time.NewTicker(min(b.cfg.MaxAge/4, time.Minute))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			b.Sweep(now())
		case ev, ok := <-events:
			if !ok {
				return
			}
			b.Event(ev)
		}
	}
}

// Stats returns the counts so far.
func (b *Builder) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.st
	s.Open = len(b.trees)
	return s
}

// Event records one sensor event. An event that makes it panic is
// counted (Stats.Malformed) and skipped: one bad record must not stop the
// traces.
func (b *Builder) Event(ev bpf.Event) {
	b.locked(func() { b.event(ev) })
}

// locked runs f under b's lock, then hands the builds f kept to the sink.
func (b *Builder) locked(f func()) {
	var kept []*Build
	func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		defer func() {
			if r := recover(); r != nil {
				b.st.Malformed++
				b.cfg.Logger.Warn("build traces: sensor event skipped", "panic", fmt.Sprint(r))
			}
			kept, b.pending = b.pending, nil
		}()
		f()
	}()
	if b.sink == nil {
		return
	}
	for _, bd := range kept {
		b.sink(bd)
	}
}

func (b *Builder) event(ev bpf.Event) {
	switch ev := ev.(type) {
	case *bpf.ExecEvent:
		b.exec(ev)
	case *bpf.ExitEvent:
		b.exit(ev)
	case *bpf.FileFailureEvent:
		if sp := b.proc(ev.Header); sp != nil {
			fe := FileEvent{Time: ev.Time, Errno: ev.Error, Class: ev.Class.String(), Syscall: ev.Syscall}
			if b.cfg.Paths {
				fe.Path = ev.Path
			}
			if len(sp.Events) < maxEventsPerSpan {
				sp.Events = append(sp.Events, fe)
			} else {
				sp.DroppedEvents++
			}
		}
	case *bpf.ConnectEvent:
		if sp := b.proc(ev.Header); sp != nil {
			c := &Span{Kind: KindConnect, Name: "connect", PID: ev.PID, Start: ev.Time - ev.Duration, End: ev.Time,
				Server: ev.Addr.Addr().Unmap().String(), Port: int(ev.Addr.Port()), Outcome: connectResult(ev.Errno), Ended: true}
			if ev.Errno != 0 {
				c.ErrorType = ev.Error
			}
			sp.addChild(c)
		}
	case *tlsprobe.Handshake:
		if sp := b.proc(ev.Header); sp != nil {
			server := ev.ServerName
			if server == "" && ev.Peer.IsValid() {
				server = ev.Peer.Addr().Unmap().String()
			}
			c := &Span{Kind: KindTLS, Name: "tls handshake", PID: ev.PID, Start: ev.Time - ev.Duration, End: ev.Time,
				Server: server, Outcome: string(ev.Outcome), Ended: true}
			if ev.Peer.IsValid() {
				c.Port = int(ev.Peer.Port())
			}
			if ev.Outcome == tlsprobe.OutcomeFailed {
				c.ErrorType = ev.ErrorType
				if c.ErrorType == "" {
					c.ErrorType = tlsprobe.OtherError
				}
			}
			sp.addChild(c)
		}
	}
}

// maxEventsPerSpan and maxChildren bound a span: a process that fails a
// million opens or connects in a loop must not grow the agent without end.
const (
	maxEventsPerSpan = 128
	maxChildren      = 4096
)

// proc is the span of the process of h: its own, else the nearest one of
// its tree (a thread's tid is not a pid; a forked child that did not exec
// has no span of its own), else the root.
func (b *Builder) proc(h bpf.Header) *Span {
	t := b.trees[h.RootPID]
	if t == nil {
		b.st.Orphans++
		return nil
	}
	if sp := t.procs[h.PID]; sp != nil {
		return sp
	}
	return t.root
}

func (b *Builder) exec(ev *bpf.ExecEvent) {
	name := execName(ev.Filename, ev.Comm)
	sp := &Span{Kind: kindOf(name, b.goNames), Name: name, PID: ev.PID, Start: ev.Time, Exit: -1}
	if isVersionQuery(ev.Args) && sp.Kind != KindGo {
		// compile -V=full and friends: the go command asks each tool for
		// its version (the build cache's tool ID); not a build step.
		sp.Kind, sp.Name = KindToolID, name+" -V=full"
	}
	switch sp.Kind {
	case KindGo:
		sub, pats := GoCommand(ev.Args)
		sp.Name = "go " + sub
		sp.Subcommand, sp.Patterns = sub, pats
	case KindCompile:
		sp.Package = argAfter(ev.Args, "-p")
		if sp.Package != "" {
			sp.Name = "compile " + sp.Package
		}
	case KindAsm, KindCgo, KindVet:
		// asm and cgo name their package with -p too; vet reads a config.
		if p := argAfter(ev.Args, "-p"); p != "" {
			sp.Package = p
			sp.Name = name + " " + p
		}
	}
	t := b.trees[ev.RootPID]
	if ev.PID == ev.RootPID && t == nil {
		if len(b.trees) >= b.cfg.MaxOpen {
			b.dropOldest()
		}
		bd := &Build{Root: sp, UID: ev.UID, Subcommand: sp.Subcommand, Patterns: sp.Patterns}
		bd.ContainerID, bd.PodUID = b.cgroups.Identity(ev.CgroupID)
		b.trees[ev.RootPID] = &tree{root: sp, procs: map[uint32]*Span{ev.PID: sp}, build: bd}
		return
	}
	if t == nil {
		b.st.Orphans++
		return
	}
	if prev := t.procs[ev.PID]; prev != nil {
		// The process exec'd again (a go command switching toolchain, a
		// shell exec'ing its last command): the new image is a child of
		// the old, which ends here.
		prev.End, prev.Ended = ev.Time, true
		if prev == t.root {
			// The root stays open until the tree ends; its image changed.
			prev.Ended = false
		}
		prev.addChild(sp)
		t.procs[ev.PID] = sp
		return
	}
	parent := t.procs[ev.PPID]
	if parent == nil {
		parent = t.root
	}
	parent.addChild(sp)
	t.procs[ev.PID] = sp
}

func (b *Builder) exit(ev *bpf.ExitEvent) {
	t := b.trees[ev.RootPID]
	if t == nil {
		return
	}
	sp := t.procs[ev.PID]
	if sp == nil {
		return // a forked child that never exec'd
	}
	delete(t.procs, ev.PID)
	sp.End, sp.Ended = ev.Time, true
	sp.Exit, sp.Signal = ev.ExitCode(), int(ev.Signal())
	// The image a root exec'd into exits with the root's pid: the root
	// ends with it.
	if ev.PID == ev.RootPID && sp != t.root {
		t.root.End, t.root.Ended = ev.Time, true
		t.root.Exit, t.root.Signal = sp.Exit, sp.Signal
	}
	if len(t.procs) == 0 {
		b.finish(ev.RootPID, t, false, ev.Time)
	}
}

// Sweep closes every tree whose go command was exec'd more than MaxAge
// before now (CLOCK_MONOTONIC, as the events' times): its open spans end
// at now, marked, and the build is kept as incomplete.
func (b *Builder) Sweep(now time.Duration) {
	b.locked(func() {
		for pid, t := range b.trees {
			if now-t.root.Start >= b.cfg.MaxAge {
				b.st.Expired++
				b.finish(pid, t, true, now)
			}
		}
	})
}

func (b *Builder) dropOldest() {
	var oldest uint32
	var at time.Duration = -1
	for pid, t := range b.trees {
		if at < 0 || t.root.Start < at {
			oldest, at = pid, t.root.Start
		}
	}
	delete(b.trees, oldest)
	b.st.Overflow++
	if in := b.cfg.Instruments; in != nil {
		in.BuildTreesOverflow.Add(context.Background(), 1)
	}
	b.cfg.Logger.Warn("build traces: open-tree bound reached, oldest tree dropped", "max_open", b.cfg.MaxOpen)
}

// finish ends tree t at end, decides whether to keep it and hands it on.
func (b *Builder) finish(pid uint32, t *tree, expired bool, end time.Duration) {
	delete(b.trees, pid)
	b.st.Finished++
	bd := t.build
	bd.Incomplete = expired
	closeOpen(bd.Root, end)
	bd.Failed = bd.Root.Failed()
	bd.CriticalPath, bd.Critical = criticalPath(bd.Root)
	bd.Slowest = slowest(bd.Root, b.cfg.TopPackages)
	if in := b.cfg.Instruments; in != nil {
		in.BuildCriticalPath.Record(context.Background(), bd.CriticalPath.Seconds(),
			metric.WithAttributes(metricdef.AttrGoSubcommand.String(firstWord(bd.Subcommand))))
	}
	if !b.keep(bd) {
		return
	}
	b.st.Kept++
	b.pending = append(b.pending, bd)
}

// keep is the tail-sampling decision: every failed, incomplete or slow
// build, and Share of the others, spread evenly (a credit of Share per
// build; one is kept each time the credit reaches 1), so that the share
// holds exactly over any run of builds.
func (b *Builder) keep(bd *Build) bool {
	if b.cfg.KeepAll || bd.Failed || bd.Incomplete || bd.Duration() >= b.cfg.Slow {
		bd.Reason = bd.reason(b.cfg.Slow)
		return true
	}
	if b.cfg.Share <= 0 {
		return false
	}
	b.credit += b.cfg.Share
	if b.credit >= 1 {
		b.credit--
		bd.Reason = "sampled"
		return true
	}
	return false
}

// closeOpen ends every span still open at end (a process whose exit was
// not seen, or still running at the bound) and marks it.
func closeOpen(sp *Span, end time.Duration) {
	if !sp.Ended {
		sp.End, sp.Ended, sp.Unfinished = end, true, true
	}
	for _, c := range sp.Children {
		closeOpen(c, end)
	}
}

// slowest returns the n slowest compile spans of the tree.
func slowest(root *Span, n int) []*Span {
	var all []*Span
	root.walk(func(s *Span) {
		if s.Kind == KindCompile && s.Package != "" {
			all = append(all, s)
		}
	})
	sort.SliceStable(all, func(i, j int) bool { return all[i].Duration() > all[j].Duration() })
	return all[:min(n, len(all))]
}
