package agent

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/gopatrol/gopatrol/agent/patrol"
)

// Metric rules see the agent's instruments as the manual reader collects
// them: counters as cumulative values, histograms with their buckets.
func TestReaderMetricsSnapshot(t *testing.T) {
	a := &agent{}
	mp := sdkmetric.NewMeterProvider(a.selfReader())
	defer mp.Shutdown(context.Background())
	m := mp.Meter("test")
	fails, _ := m.Int64Counter("gopatrol.file_access.failures")
	dur, _ := m.Float64Histogram("gopatrol.build.duration", metric.WithExplicitBucketBoundaries(1, 10))
	ctx := context.Background()
	eacces := metric.WithAttributes(attribute.String("error.type", "EACCES"))
	fails.Add(ctx, 3, eacces)
	fails.Add(ctx, 4, eacces)
	fails.Add(ctx, 1, metric.WithAttributes(attribute.String("error.type", "ENOENT")))
	dur.Record(ctx, 0.5)
	dur.Record(ctx, 5)
	dur.Record(ctx, 50)

	got := map[string]patrol.MetricPoint{}
	for _, p := range (readerMetrics{a.selfRead}).Snapshot() {
		got[p.Name+"/"+p.Attrs["error.type"]] = p
	}
	if p := got["gopatrol.file_access.failures/EACCES"]; p.Value != 7 {
		t.Errorf("EACCES failures = %+v, want 7", p)
	}
	if p := got["gopatrol.file_access.failures/ENOENT"]; p.Value != 1 {
		t.Errorf("ENOENT failures = %+v, want 1", p)
	}
	h := got["gopatrol.build.duration/"]
	if len(h.Bounds) != 2 || len(h.Counts) != 3 || h.Counts[0] != 1 || h.Counts[1] != 1 || h.Counts[2] != 1 {
		t.Errorf("build duration = %+v, want bounds [1 10] and one sample per bucket", h)
	}
	if pts := (readerMetrics{}).Snapshot(); pts != nil {
		t.Errorf("no reader: %v, want nothing", pts)
	}
}
