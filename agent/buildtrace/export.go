package buildtrace

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Bounds of a TraceBatcher.
const (
	// MaxQueuedSpans bounds the spans waiting for the exporter: a `go
	// build -a std` is about 700; past the bound spans are dropped and
	// counted.
	MaxQueuedSpans = 16384
	// MaxExportBatch is the most spans one export sends; a bigger trace
	// goes in several.
	MaxExportBatch = 1024
	exportTimeout  = 30 * time.Second
)

// TraceBatcher is a span processor that exports the spans of a trace
// when its root span ends: Emit ends a build's spans children first and
// the root last, so a build is one export. Unlike the SDK's batch span
// processor it has no timer: between builds it costs nothing (the batch
// processor wakes every OTEL_BSP_SCHEDULE_DELAY, the larger part of what
// tracing cost the agent over a build, docs/benchmarks.md), and a build
// is sent as soon as it ends instead of up to a delay later. Spans of
// other traces through the same provider (the patrol cycles') go out the
// same way, when their root ends.
type TraceBatcher struct {
	exp  sdktrace.SpanExporter
	log  *slog.Logger
	wake chan struct{}
	done chan struct{}

	mu      sync.Mutex
	pending []sdktrace.ReadOnlySpan
	dropped int
	stopped bool

	exportMu sync.Mutex // one export at a time, in end order
	stop     sync.Once
}

// NewTraceBatcher starts a TraceBatcher exporting through exp; log gets
// export errors and drops (nil discards them).
func NewTraceBatcher(exp sdktrace.SpanExporter, log *slog.Logger) *TraceBatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &TraceBatcher{exp: exp, log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go p.loop()
	return p
}

// OnStart does nothing: spans are exported once ended.
func (p *TraceBatcher) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues s and, when s is the root of its trace in this process or
// a batch is full, wakes the exporter.
func (p *TraceBatcher) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	p.mu.Lock()
	if p.stopped || len(p.pending) >= MaxQueuedSpans {
		p.dropped++
		p.mu.Unlock()
		return
	}
	p.pending = append(p.pending, s)
	if len(p.pending) >= MaxExportBatch || !s.Parent().IsValid() || s.Parent().IsRemote() {
		// Under mu: Shutdown closes wake under it.
		select {
		case p.wake <- struct{}{}:
		default: // already woken: that export takes these too
		}
	}
	p.mu.Unlock()
}

func (p *TraceBatcher) loop() {
	defer close(p.done)
	for range p.wake {
		ctx, cancel := context.WithTimeout(context.Background(), exportTimeout)
		if err := p.export(ctx); err != nil {
			p.log.Warn("build traces: export", "err", err)
		}
		cancel()
	}
}

// export sends every queued span, in batches of MaxExportBatch.
func (p *TraceBatcher) export(ctx context.Context) error {
	p.exportMu.Lock()
	defer p.exportMu.Unlock()
	p.mu.Lock()
	spans, dropped := p.pending, p.dropped
	p.pending, p.dropped = nil, 0
	p.mu.Unlock()
	if dropped > 0 {
		p.log.Warn("build traces: spans dropped, the exporter is behind", "dropped", dropped, "max_queued", MaxQueuedSpans)
	}
	for len(spans) > 0 {
		n := min(len(spans), MaxExportBatch)
		if err := p.exp.ExportSpans(ctx, spans[:n]); err != nil {
			return fmt.Errorf("%d spans: %w", len(spans), err)
		}
		spans = spans[n:]
	}
	return nil
}

// ForceFlush exports every queued span now.
func (p *TraceBatcher) ForceFlush(ctx context.Context) error {
	return p.export(ctx)
}

// Shutdown stops taking spans, exports those queued and shuts the
// exporter down.
func (p *TraceBatcher) Shutdown(ctx context.Context) error {
	var err error
	p.stop.Do(func() {
		p.mu.Lock()
		p.stopped = true
		close(p.wake)
		p.mu.Unlock()
		select {
		case <-p.done:
		case <-ctx.Done():
			err = ctx.Err()
			return
		}
		if err = p.export(ctx); err != nil {
			p.exp.Shutdown(ctx)
			return
		}
		err = p.exp.Shutdown(ctx)
	})
	return err
}
