package buildtrace

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sys/unix"

	"github.com/gopatrol/gopatrol/metricdef"
)

// Attribute keys of build spans that no semantic convention covers.
const (
	AttrPackage       = attribute.Key("gopatrol.go.package")
	AttrPatterns      = attribute.Key("gopatrol.go.patterns")
	AttrSpanKind      = attribute.Key("gopatrol.build.span_kind")
	AttrCriticalPath  = attribute.Key("gopatrol.build.critical_path_s")
	AttrSlowest       = attribute.Key("gopatrol.build.slowest_packages")
	AttrIncomplete    = attribute.Key("gopatrol.build.incomplete")
	AttrUnfinished    = attribute.Key("gopatrol.span.unfinished")
	AttrKeptBecause   = attribute.Key("gopatrol.build.sampled_because")
	AttrDroppedEvents = attribute.Key("gopatrol.span.dropped_events")
	AttrDroppedSpans  = attribute.Key("gopatrol.span.dropped_children")
	AttrSyscall       = attribute.Key("gopatrol.syscall")
)

// FileEventName is the name of a file-access failure's span event.
const FileEventName = "file_access_failure"

// Clock turns the sensors' CLOCK_MONOTONIC times into wall time.
type Clock struct{ boot time.Time }

// NewClock reads both clocks now.
func NewClock() Clock {
	return Clock{time.Now().Add(-Monotonic())}
}

// Wall is the wall time of monotonic time d.
func (c Clock) Wall(d time.Duration) time.Time { return c.boot.Add(d) }

// Monotonic is CLOCK_MONOTONIC now, the sensors' clock (for Sweep).
func Monotonic() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

// Emit exports b as one trace through tracer, with the sensors' times.
func Emit(ctx context.Context, tracer trace.Tracer, clock Clock, b *Build) {
	attrs := []attribute.KeyValue{
		semconv.UserID(fmt.Sprint(b.UID)),
		AttrCriticalPath.Float64(b.CriticalPath.Seconds()),
		AttrKeptBecause.String(b.Reason),
	}
	if b.ContainerID != "" {
		attrs = append(attrs, semconv.ContainerID(b.ContainerID))
	}
	if b.PodUID != "" {
		attrs = append(attrs, semconv.K8SPodUID(b.PodUID))
	}
	if b.Incomplete {
		attrs = append(attrs, AttrIncomplete.Bool(true))
	}
	if len(b.Slowest) > 0 {
		s := make([]string, len(b.Slowest))
		for i, sp := range b.Slowest {
			s[i] = fmt.Sprintf("%s %.3fs", sp.Package, sp.Duration().Seconds())
		}
		attrs = append(attrs, AttrSlowest.StringSlice(s))
	}
	emit(ctx, tracer, clock, b.Root, attrs, trace.WithNewRoot())
}

func emit(ctx context.Context, tracer trace.Tracer, clock Clock, s *Span, extra []attribute.KeyValue, opts ...trace.SpanStartOption) {
	attrs := append(spanAttrs(s), extra...)
	kind := trace.SpanKindInternal
	if !s.isProcess() {
		kind = trace.SpanKindClient
	}
	opts = append(opts, trace.WithTimestamp(clock.Wall(s.Start)), trace.WithAttributes(attrs...), trace.WithSpanKind(kind))
	ctx, span := tracer.Start(ctx, s.Name, opts...)
	for _, e := range s.Events {
		ea := []attribute.KeyValue{semconv.ErrorTypeKey.String(e.Errno), metricdef.AttrFileClass.String(e.Class)}
		if e.Syscall != "" {
			ea = append(ea, AttrSyscall.String(e.Syscall))
		}
		if e.Path != "" {
			ea = append(ea, semconv.FilePath(e.Path))
		}
		span.AddEvent(FileEventName, trace.WithTimestamp(clock.Wall(e.Time)), trace.WithAttributes(ea...))
	}
	for _, c := range s.Children {
		emit(ctx, tracer, clock, c, nil)
	}
	switch {
	case s.Unfinished:
		span.SetStatus(codes.Error, "still running when the tree was closed")
	case s.Failed():
		span.SetStatus(codes.Error, statusText(s))
	default:
		span.SetStatus(codes.Ok, "")
	}
	span.End(trace.WithTimestamp(clock.Wall(s.End)))
}

func statusText(s *Span) string {
	switch {
	case !s.isProcess():
		return s.ErrorType
	case s.Signal != 0:
		return unix.SignalName(unix.Signal(s.Signal))
	}
	return fmt.Sprintf("exit status %d", s.Exit)
}

func spanAttrs(s *Span) []attribute.KeyValue {
	a := []attribute.KeyValue{AttrSpanKind.String(s.Kind)}
	if !s.isProcess() {
		a = append(a, semconv.ServerAddress(s.Server))
		if s.Port != 0 {
			a = append(a, semconv.ServerPort(s.Port))
		}
		if s.Kind == KindConnect {
			a = append(a, metricdef.AttrConnectResult.String(s.Outcome))
		} else {
			a = append(a, metricdef.AttrTLSOutcome.String(s.Outcome))
		}
		if s.ErrorType != "" {
			a = append(a, semconv.ErrorTypeKey.String(s.ErrorType))
		}
		return a
	}
	a = append(a, semconv.ProcessPID(int(s.PID)))
	if s.Ended && !s.Unfinished {
		a = append(a, semconv.ProcessExitCode(s.Exit))
	}
	if s.Kind == KindGo {
		a = append(a, metricdef.AttrGoSubcommand.String(s.Subcommand))
		if len(s.Patterns) > 0 {
			a = append(a, AttrPatterns.StringSlice(s.Patterns))
		}
	}
	if s.Package != "" {
		a = append(a, AttrPackage.String(s.Package))
	}
	if s.Unfinished {
		a = append(a, AttrUnfinished.Bool(true))
	}
	if s.DroppedEvents > 0 {
		a = append(a, AttrDroppedEvents.Int(s.DroppedEvents))
	}
	if s.DroppedSpans > 0 {
		a = append(a, AttrDroppedSpans.Int(s.DroppedSpans))
	}
	return a
}
