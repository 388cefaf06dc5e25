package otelcfg

import (
	"context"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/metric"

	"github.com/gopatrol/gopatrol/metricdef"
	"github.com/gopatrol/gopatrol/otelcfg/otlptest"
)

// BenchmarkExport10k exports 10,000 data points per operation (2,000 checks
// × 5 statuses of gopatrol.check.result) to the in-test receiver: the cost
// of one collection, encoding and round trip, per protocol.
func BenchmarkExport10k(b *testing.B) {
	const checks, points = 2000, 10000
	statuses := []string{"pass", "warn", "fail", "skip", "error"}
	recv := otlptest.Start(b, otlptest.Options{Discard: true})
	res := testResource(b)
	for _, bc := range []struct{ name, protocol, endpoint, compression string }{
		{"grpc", "grpc", recv.GRPCEndpoint, "none"},
		{"grpc-gzip", "grpc", recv.GRPCEndpoint, "gzip"},
		{"http", "http/protobuf", recv.HTTPEndpoint, "none"},
		{"http-gzip", "http/protobuf", recv.HTTPEndpoint, "gzip"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := newProvider(b, map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": bc.protocol, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": bc.endpoint,
				"OTEL_EXPORTER_OTLP_COMPRESSION": bc.compression, "OTEL_EXPORTER_OTLP_TIMEOUT": "30000"}, res)
			defer shutdown(p)
			in, err := metricdef.NewInstruments(p.Meter())
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for i := range checks {
				id := metricdef.AttrCheckID.String(fmt.Sprintf("bench.check-%04d", i))
				for j, s := range statuses {
					in.CheckResult.Record(ctx, int64(j%2), metric.WithAttributes(id, metricdef.AttrCheckStatus.String(s)))
				}
			}
			// Gauges keep their last value: every flush exports all points.
			if err := p.ForceFlush(ctx); err != nil {
				b.Fatal(err)
			}
			before := recv.Count()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := p.ForceFlush(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if got := recv.Count() - before; got != b.N {
				b.Fatalf("receiver got %d exports, want %d", got, b.N)
			}
			b.ReportMetric(float64(points), "points/op")
		})
	}
}
