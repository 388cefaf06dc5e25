package sense

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/gopatrol/gopatrol/bpf"
	"github.com/gopatrol/gopatrol/bpf/tlsprobe"
	"github.com/gopatrol/gopatrol/metricdef"
)

// MaxTrees bounds the live-tree table: a tree whose exit was lost (ring
// buffer full) would otherwise stay forever. The oldest is dropped first.
const MaxTrees = 4096

// Aggregator records sensor events. Its methods may be called from
// several goroutines.
type Aggregator struct {
	in  *metricdef.Instruments
	log *slog.Logger

	mu    sync.Mutex
	trees map[uint32]*tree
	prev  counters
	st    Snapshot
}

type tree struct {
	subcommand string
	started    time.Time
	execs      int
}

// counters are the last kernel counters recorded, so that Counters adds
// only what grew since.
type counters struct {
	failures map[[2]uint64]uint64 // (class, errno) -> count
	drops    map[bpf.EventType]uint64
	runTime  map[string]time.Duration
}

// Snapshot is what /status shows of the sensors.
type Snapshot struct {
	Events       uint64            `json:"events"`
	LiveTrees    int               `json:"live_trees"`
	Trees        uint64            `json:"trees_completed"`
	Execs        uint64            `json:"execs"`
	Connects     uint64            `json:"connects"`
	Handshakes   uint64            `json:"tls_handshakes"`
	Malformed    uint64            `json:"malformed_events"`
	Lost         map[string]uint64 `json:"lost_events"`
	FileFailures map[string]uint64 `json:"file_failures"`
}

// New records on in. log gets one line per malformed event kind.
func New(in *metricdef.Instruments, log *slog.Logger) *Aggregator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Aggregator{in: in, log: log, trees: map[uint32]*tree{},
		prev: counters{failures: map[[2]uint64]uint64{}, drops: map[bpf.EventType]uint64{}, runTime: map[string]time.Duration{}},
		st:   Snapshot{Lost: map[string]uint64{}, FileFailures: map[string]uint64{}}}
}

// Run records every event of events until it is closed or ctx ends. An
// event that makes the recording panic is counted and skipped: one
// malformed record must not stop the sensors' metrics.
func (a *Aggregator) Run(ctx context.Context, events <-chan bpf.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			a.safeEvent(ctx, ev)
		}
	}
}

func (a *Aggregator) safeEvent(ctx context.Context, ev bpf.Event) {
	defer func() {
		if r := recover(); r != nil {
			a.mu.Lock()
			a.st.Malformed++
			a.mu.Unlock()
			a.log.Warn("sensor event skipped", "type", ev.EventHeader().Type.String(), "panic", fmt.Sprint(r))
		}
	}()
	a.Event(ctx, ev)
}

// Event records one event.
func (a *Aggregator) Event(ctx context.Context, ev bpf.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.st.Events++
	switch ev := ev.(type) {
	case *bpf.ExecEvent:
		a.exec(ctx, ev)
	case *bpf.ExitEvent:
		if ev.PID != ev.RootPID {
			return
		}
		tr := a.trees[ev.RootPID]
		delete(a.trees, ev.RootPID)
		sub := SubcommandUnknown
		if tr != nil {
			sub = tr.subcommand
		}
		a.st.Trees++
		a.in.ToolchainInvocationDuration.Record(ctx, ev.Duration.Seconds(),
			metric.WithAttributes(metricdef.AttrGoSubcommand.String(sub)))
	case *bpf.ConnectEvent:
		a.st.Connects++
		a.in.Connects.Add(ctx, 1, metric.WithAttributes(
			metricdef.AttrConnectResult.String(ConnectResult(ev.Errno)),
			metricdef.AttrServerAddress.String(ev.Addr.Addr().Unmap().String()),
			metricdef.AttrServerPort.Int(int(ev.Addr.Port()))))
	case *tlsprobe.Handshake:
		a.st.Handshakes++
		server := ev.ServerName
		if server == "" && ev.Peer.IsValid() {
			server = ev.Peer.Addr().Unmap().String()
		}
		outcome := metricdef.AttrTLSOutcome.String(string(ev.Outcome))
		attrs := []attribute.KeyValue{outcome, metricdef.AttrServerAddress.String(server)}
		if ev.Outcome == tlsprobe.OutcomeFailed {
			et := ev.ErrorType
			if et == "" {
				et = tlsprobe.OtherError
			}
			attrs = append(attrs, metricdef.AttrErrorType.String(et))
		}
		a.in.TLSHandshakes.Add(ctx, 1, metric.WithAttributes(attrs...))
		a.in.TLSHandshakeDuration.Record(ctx, ev.Duration.Seconds(),
			metric.WithAttributes(outcome, metricdef.AttrServerAddress.String(server)))
	}
	// File failures are counted exactly in the kernel (Counters); the
	// sampled events carry paths, which never become attributes.
}

func (a *Aggregator) exec(ctx context.Context, ev *bpf.ExecEvent) {
	if ev.PID == ev.RootPID {
		if _, ok := a.trees[ev.RootPID]; !ok {
			if len(a.trees) >= MaxTrees {
				a.dropOldest()
			}
			a.trees[ev.RootPID] = &tree{subcommand: Subcommand(ev.Args), started: time.Now()}
		}
	}
	name := filepath.Base(ev.Filename)
	if name == "." || name == "/" {
		name = ev.Comm
	}
	if tr := a.trees[ev.RootPID]; tr != nil {
		tr.execs++
	}
	a.st.Execs++
	a.in.ToolchainExecs.Add(ctx, 1, metric.WithAttributes(metricdef.AttrExecutableName.String(name)))
}

func (a *Aggregator) dropOldest() {
	var oldest uint32
	var at time.Time
	for pid, tr := range a.trees {
		if at.IsZero() || tr.started.Before(at) {
			oldest, at = pid, tr.started
		}
	}
	delete(a.trees, oldest)
}

// Counters records what grew in the kernel's exact counters since the last
// call: file-access failures, lost events and program run time.
func (a *Aggregator) Counters(ctx context.Context, st bpf.Stats) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range st.FileFailures {
		k := [2]uint64{uint64(f.Class), uint64(f.Errno)}
		if d := f.Count - a.prev.failures[k]; f.Count > a.prev.failures[k] {
			class := f.Class.String()
			errno := bpf.ErrnoName(f.Errno)
			a.in.FileAccessFailures.Add(ctx, int64(d), metric.WithAttributes(
				metricdef.AttrFileClass.String(class), metricdef.AttrErrorType.String(errno)))
			a.st.FileFailures[class+" "+errno] += d
		}
		a.prev.failures[k] = f.Count
	}
	for t, n := range st.Drops {
		if n > a.prev.drops[t] {
			a.in.SensorLostEvents.Add(ctx, int64(n-a.prev.drops[t]),
				metric.WithAttributes(metricdef.AttrSensorProgram.String(t.String())))
			a.st.Lost[t.String()] += n - a.prev.drops[t]
		}
		a.prev.drops[t] = n
	}
	if st.RunTimeEnabled {
		for _, p := range st.Programs {
			if p.RunTime > a.prev.runTime[p.Name] {
				a.in.SensorProgramRunTime.Add(ctx, (p.RunTime - a.prev.runTime[p.Name]).Seconds(),
					metric.WithAttributes(metricdef.AttrSensorProgram.String(p.Name)))
			}
			a.prev.runTime[p.Name] = p.RunTime
		}
	}
}

// Snapshot returns the aggregates so far.
func (a *Aggregator) Snapshot() Snapshot {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.st
	s.LiveTrees = len(a.trees)
	s.Lost = copyMap(a.st.Lost)
	s.FileFailures = copyMap(a.st.FileFailures)
	return s
}

func copyMap(m map[string]uint64) map[string]uint64 {
	c := make(map[string]uint64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// ConnectResult buckets a connect's errno into the catalogue's results.
func ConnectResult(errno syscall.Errno) string {
	switch errno {
	case 0:
		return "ok"
	case syscall.ECONNREFUSED:
		return "refused"
	case syscall.ETIMEDOUT:
		return "timeout"
	case syscall.EHOSTUNREACH, syscall.ENETUNREACH:
		return "unreachable"
	}
	return "other"
}

// SubcommandUnknown is the subcommand of a tree whose go exec was not seen
// (it started before the sensors) or that named none.
const SubcommandUnknown = "unknown"

// subcommands are the go command's own; anything else (a typo, a path)
// is "other", so the attribute stays bounded.
var subcommands = map[string]bool{
	"bug": true, "build": true, "clean": true, "doc": true, "env": true, "fix": true, "fmt": true,
	"generate": true, "get": true, "install": true, "list": true, "mod": true, "work": true,
	"run": true, "telemetry": true, "test": true, "tool": true, "version": true, "vet": true, "help": true,
}

// Subcommand is the go subcommand of argv: the first argument that is not
// a flag, "unknown" when there is none, "other" when it is not one of the
// go command's.
func Subcommand(args []string) string {
	for _, a := range args[min(1, len(args)):] {
		if strings.HasPrefix(a, "-") {
			continue
		}
		if subcommands[a] {
			return a
		}
		return "other"
	}
	return SubcommandUnknown
}
