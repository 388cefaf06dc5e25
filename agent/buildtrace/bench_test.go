package buildtrace_test

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/gopatrol/gopatrol/agent/buildtrace"
	"github.com/gopatrol/gopatrol/bpf"
)

// buildEvents is the events of one build shaped like a small go build:
// the go command, n compiles each with a file failure, a link.
func buildEvents(root uint32, n int) []bpf.Event {
	h := func(pid uint32, at time.Duration) bpf.Header {
		return bpf.Header{PID: pid, TID: pid, RootPID: root, Time: at}
	}
	evs := []bpf.Event{&bpf.ExecEvent{Header: h(root, 0), Comm: "go", Filename: "/usr/local/go/bin/go", Args: []string{"go", "build", "-o", "x", "./..."}}}
	for i := range n {
		pid := root + 1 + uint32(i)
		at := time.Duration(i+1) * time.Millisecond
		evs = append(evs,
			&bpf.ExecEvent{Header: h(pid, at), PPID: root, Comm: "compile", Filename: "/usr/local/go/pkg/tool/linux_amd64/compile",
				Args: []string{"compile", "-o", "/tmp/b001/_pkg_.a", "-trimpath", "/tmp/b001=>", "-p", fmt.Sprintf("example.com/m/p%d", i), "-lang=go1.26", "-complete"}},
			&bpf.FileFailureEvent{Header: h(pid, at+time.Microsecond), Errno: syscall.ENOENT, Error: "ENOENT", Class: bpf.ClassGOCACHE, Path: "/root/.cache/go-build/aa/x"},
			&bpf.ExitEvent{Header: h(pid, at+50*time.Millisecond), PPID: root})
	}
	link := root + 1 + uint32(n)
	end := time.Duration(n+60) * time.Millisecond
	return append(evs,
		&bpf.ExecEvent{Header: h(link, end-10*time.Millisecond), PPID: root, Comm: "link", Filename: "/usr/local/go/pkg/tool/linux_amd64/link", Args: []string{"link", "-o", "x"}},
		&bpf.ExitEvent{Header: h(link, end-time.Millisecond), PPID: root},
		&bpf.ExitEvent{Header: h(root, end)})
}

// BenchmarkEvent is the cost of one sensor event in the Builder, span
// building and the tree's end (critical path, sampling) included; every
// build kept, none exported.
func BenchmarkEvent(b *testing.B) {
	evs := buildEvents(1000, 100)
	bl := buildtrace.New(buildtrace.Config{KeepAll: true}, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		for _, ev := range evs {
			bl.Event(ev)
		}
		i += len(evs)
	}
}

// BenchmarkEmit is the cost of exporting one span of a kept build
// through the OTel SDK (batching to an in-memory exporter).
func BenchmarkEmit(b *testing.B) {
	var kept *buildtrace.Build
	bl := buildtrace.New(buildtrace.Config{KeepAll: true}, func(bd *buildtrace.Build) { kept = bd })
	for _, ev := range buildEvents(1000, 100) {
		bl.Event(ev)
	}
	spans := 0
	var count func(*buildtrace.Span)
	count = func(s *buildtrace.Span) {
		spans++
		for _, c := range s.Children {
			count(c)
		}
	}
	count(kept.Root)
	exp := discard{}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithMaxQueueSize(1<<16)))
	defer tp.Shutdown(context.Background())
	tracer, clock := tp.Tracer("bench"), buildtrace.NewClock()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += spans {
		buildtrace.Emit(context.Background(), tracer, clock, kept)
	}
}

// BenchmarkOpenTrees measures the memory of 1,000 open trees of 10
// running compiles each (the go command's span and ten children).
func BenchmarkOpenTrees(b *testing.B) {
	for range b.N {
		bl := buildtrace.New(buildtrace.Config{MaxOpen: 2000}, nil)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for t := range 1000 {
			evs := buildEvents(uint32(100000+t*100), 10)
			for _, ev := range evs {
				if _, exit := ev.(*bpf.ExitEvent); !exit {
					bl.Event(ev)
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if st := bl.Stats(); st.Open != 1000 {
			b.Fatalf("%d open trees, want 1000", st.Open)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1000, "B/tree")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/11000, "B/span")
		runtime.KeepAlive(bl)
	}
}

// discard is an exporter that drops what it gets: the benchmark measures
// span building and the SDK, not a network.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }
