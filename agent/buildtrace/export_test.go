package buildtrace_test

import (
	"context"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/gopatrol/gopatrol/agent/buildtrace"
)

// batches is an exporter that records each export's span names.
type batches struct {
	mu   sync.Mutex
	got  [][]string
	shut bool
	sent chan struct{}
	hold chan struct{} // when set, each export waits for it to close
}

func (e *batches) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	if e.hold != nil {
		<-e.hold
	}
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name()
	}
	e.mu.Lock()
	e.got = append(e.got, names)
	e.mu.Unlock()
	select {
	case e.sent <- struct{}{}:
	default:
	}
	return nil
}

func (e *batches) Shutdown(context.Context) error {
	e.mu.Lock()
	e.shut = true
	e.mu.Unlock()
	return nil
}

func (e *batches) exports() [][]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([][]string(nil), e.got...)
}

// A build is one export, sent when its root span ends, with no flush and
// no timer; a trace whose root has not ended waits, and Shutdown sends it.
func TestTraceBatcherExportsEachBuildAtItsRoot(t *testing.T) {
	exp := &batches{sent: make(chan struct{}, 16)}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(buildtrace.NewTraceBatcher(exp, nil)))
	tracer := tp.Tracer("test")

	var kept *buildtrace.Build
	bl := buildtrace.New(buildtrace.Config{KeepAll: true}, func(bd *buildtrace.Build) { kept = bd })
	for _, ev := range buildEvents(1000, 20) {
		bl.Event(ev)
	}
	if kept == nil {
		t.Fatal("no build kept")
	}
	want := countSpans(kept.Root)
	buildtrace.Emit(context.Background(), tracer, buildtrace.NewClock(), kept)
	select {
	case <-exp.sent:
	case <-time.After(10 * time.Second):
		t.Fatal("the build was not exported within 10s of its root's end")
	}
	got := exp.exports()
	if len(got) != 1 || len(got[0]) != want {
		t.Fatalf("exports %v, want one of %d spans", got, want)
	}
	if last := got[0][len(got[0])-1]; last != kept.Root.Name {
		t.Errorf("last span of the export %q, want the root %q", last, kept.Root.Name)
	}

	// A child whose root is still open stays queued.
	ctx, root := tracer.Start(context.Background(), "open root")
	_, child := tracer.Start(ctx, "child")
	child.End()
	select {
	case <-exp.sent:
		t.Fatalf("exported before its root ended: %v", exp.exports())
	case <-time.After(200 * time.Millisecond):
	}
	_ = root
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got = exp.exports()
	if len(got) != 2 || len(got[1]) != 1 || got[1][0] != "child" || !exp.shut {
		t.Errorf("after Shutdown: exports %v, exporter shut %v; want the child sent and the exporter shut", got, exp.shut)
	}
}

// Past MaxQueuedSpans waiting for a stuck exporter, spans are dropped
// (and logged), not queued without bound; the queue drains once the
// exporter is back.
func TestTraceBatcherBoundsTheQueue(t *testing.T) {
	exp := &batches{sent: make(chan struct{}, 1), hold: make(chan struct{})}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(buildtrace.NewTraceBatcher(exp, nil)))
	tracer := tp.Tracer("test")
	ctx, root := tracer.Start(context.Background(), "root")
	ended := 3 * buildtrace.MaxQueuedSpans
	for range ended - 1 {
		_, s := tracer.Start(ctx, "child", trace.WithSpanKind(trace.SpanKindClient))
		s.End()
	}
	root.End()
	close(exp.hold)
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range exp.exports() {
		if len(b) > buildtrace.MaxExportBatch {
			t.Errorf("an export of %d spans, over MaxExportBatch %d", len(b), buildtrace.MaxExportBatch)
		}
		n += len(b)
	}
	// The export stuck in the exporter took what was queued when it
	// started (at most the bound); the queue held at most the bound more.
	if n > 2*buildtrace.MaxQueuedSpans || n < buildtrace.MaxQueuedSpans {
		t.Errorf("%d spans exported of %d ended, want from %d to %d (the queue's bound, and one export in flight)",
			n, ended, buildtrace.MaxQueuedSpans, 2*buildtrace.MaxQueuedSpans)
	}
}
