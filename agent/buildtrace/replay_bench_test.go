package buildtrace_test

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/gopatrol/gopatrol/agent/buildtrace"
	"github.com/gopatrol/gopatrol/bpf"
	"github.com/gopatrol/gopatrol/bpf/bpftest"
	"github.com/gopatrol/gopatrol/otelcfg"
	"github.com/gopatrol/gopatrol/otelcfg/otlptest"
)

// recordBuild runs a real `go build -a` of a module of n packages under
// the sensors and returns the events of its tree, as the agent's Builder
// would have seen them.
func recordBuild(b *testing.B, n int) []bpf.Event {
	b.Helper()
	bpftest.Require(b)
	s, err := bpf.Open(bpf.Config{Eager: true})
	if err != nil {
		b.Fatalf("bpf.Open: %v", err)
	}
	defer s.Close()
	dir := b.TempDir()
	writeModule(b, dir, n, "")
	var evs []bpf.Event
	cmd := goCmd(b, dir, "build", "-a", "-o", os.DevNull, "./...")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	root := uint32(cmd.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// The build is over once go has been waited for and its exit event
	// (which may come before or after the wait) has been read.
	var waited, exitSeen bool
	deadline := time.After(3 * time.Minute)
	for !waited || !exitSeen {
		select {
		case ev := <-s.Events():
			if ev.EventHeader().RootPID != root {
				continue
			}
			evs = append(evs, ev)
			if x, ok := ev.(*bpf.ExitEvent); ok && x.PID == root {
				exitSeen = true
			}
		case err := <-done:
			if err != nil {
				b.Fatalf("go build: %v", err)
			}
			waited = true
			deadline = time.After(5 * time.Second)
		case <-deadline:
			b.Fatalf("go pid %d: waited %v, exit event seen %v (%d events)", root, waited, exitSeen, len(evs))
		}
	}
	return evs
}

// BenchmarkReplayBuild is the agent's tracing path per build, measured
// on the events of a real `go build -a` of a ten-package module (about
// 80 compiled packages) replayed: the Builder, Emit through the OTel SDK
// with the agent's tracer provider, and the OTLP/gRPC export to a
// receiver on loopback (ForceFlush per build). It is where a CPU profile
// of tracing is taken (-cpuprofile): the end-to-end benchmark in agent/
// cannot resolve tens of milliseconds against its noise.
func BenchmarkReplayBuild(b *testing.B) {
	evs := recordBuild(b, 10)
	rcv := otlptest.Start(b, otlptest.Options{})
	tp, err := otelcfg.NewTracerProvider(context.Background(), otelcfg.TracesConfig{
		Exporters: []string{otelcfg.ExporterOTLP},
		OTLP:      otelcfg.OTLPConfig{Protocol: otelcfg.ProtocolGRPC, Endpoint: rcv.GRPCEndpoint, Insecure: true, Timeout: 10 * time.Second},
	}, resource.Empty(), otelcfg.Options{SpanProcessor: batcher})
	if err != nil {
		b.Fatal(err)
	}
	defer tp.Shutdown(context.Background())
	tracer, clock := tp.Tracer(), buildtrace.NewClock()
	spans := 0
	bl := buildtrace.New(buildtrace.Config{KeepAll: true, GoNames: []string{"go"}}, func(bd *buildtrace.Build) {
		spans = countSpans(bd.Root)
		buildtrace.Emit(context.Background(), tracer, clock, bd)
	})
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for range b.N {
		for _, ev := range evs {
			bl.Event(ev)
		}
		if err := tp.ForceFlush(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/build")
	if st := bl.Stats(); st.Kept != uint64(b.N) {
		b.Fatalf("%d builds kept of %d replayed (stats %+v)", st.Kept, b.N, st)
	}
	b.ReportMetric(float64(len(evs)), "events/build")
	b.ReportMetric(float64(spans), "spans/build")
}

func countSpans(s *buildtrace.Span) int {
	n := 1
	for _, c := range s.Children {
		n += countSpans(c)
	}
	return n
}

// processCPU is the CPU time of this process so far: the benchmark's own
// and the receiver's, an upper bound of what tracing costs the agent.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// batcher is the agent's span processor (agent/traces.go).
func batcher(exp sdktrace.SpanExporter) sdktrace.SpanProcessor {
	return buildtrace.NewTraceBatcher(exp, nil)
}

// BenchmarkTracerIdle is what a tracer provider exporting over OTLP/gRPC
// to loopback costs while no build ends, per second: the SDK's batch span
// processor wakes every OTEL_BSP_SCHEDULE_DELAY (500 ms in the end-to-end
// benchmark, 5 s by default), the agent's TraceBatcher never. "none" is
// the same process without a provider (the receiver, the runtime).
func BenchmarkTracerIdle(b *testing.B) {
	rcv := otlptest.Start(b, otlptest.Options{})
	for _, c := range []struct {
		name, delay string
		proc        func(sdktrace.SpanExporter) sdktrace.SpanProcessor
	}{
		{name: "none"},
		{name: "bsp-500ms", delay: "500"},
		{name: "bsp-5s", delay: "5000"},
		{name: "trace-batcher", delay: "500", proc: batcher},
	} {
		b.Run(c.name, func(b *testing.B) {
			if c.delay != "" {
				b.Setenv("OTEL_BSP_SCHEDULE_DELAY", c.delay)
				tp, err := otelcfg.NewTracerProvider(context.Background(), otelcfg.TracesConfig{
					Exporters: []string{otelcfg.ExporterOTLP},
					OTLP:      otelcfg.OTLPConfig{Protocol: otelcfg.ProtocolGRPC, Endpoint: rcv.GRPCEndpoint, Insecure: true, Timeout: 10 * time.Second},
				}, resource.Empty(), otelcfg.Options{SpanProcessor: c.proc})
				if err != nil {
					b.Fatal(err)
				}
				defer tp.Shutdown(context.Background())
				// One span, so that the exporter's connection is up.
				_, s := tp.Tracer().Start(context.Background(), "warm")
				s.End()
				if err := tp.ForceFlush(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			const idle = 10 * time.Second
			b.ResetTimer()
			cpu0 := processCPU(b)
			for range b.N {
				time.Sleep(idle)
			}
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N)/idle.Seconds(), "cpu-ns/s")
		})
	}
}
