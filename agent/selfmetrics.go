package agent

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gopatrol/gopatrol/agent/patrol"
)

// selfReader adds a manual reader to the agent's meter provider, through
// which metric rules read the agent's own instruments (sensor aggregates,
// check results, TLS handshakes) as they are now, without an export.
func (a *agent) selfReader() sdkmetric.Option {
	a.selfRead = sdkmetric.NewManualReader()
	return sdkmetric.WithReader(a.selfRead)
}

// readerMetrics is the patrol.MetricSource over a manual reader. With no
// exporter (the SDK is then a no-op provider) or with OTEL_CONFIG_FILE the
// reader is not registered and the snapshot is empty.
type readerMetrics struct{ r *sdkmetric.ManualReader }

// Snapshot collects every instrument's current points, cumulative.
func (m readerMetrics) Snapshot() []patrol.MetricPoint {
	if m.r == nil {
		return nil
	}
	var rm metricdata.ResourceMetrics
	if err := m.r.Collect(context.Background(), &rm); err != nil {
		return nil
	}
	var out []patrol.MetricPoint
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			out = appendPoints(out, md)
		}
	}
	return out
}

func appendPoints(out []patrol.MetricPoint, md metricdata.Metrics) []patrol.MetricPoint {
	switch d := md.Data.(type) {
	case metricdata.Sum[int64]:
		out = valuePoints(out, md.Name, d.DataPoints)
	case metricdata.Sum[float64]:
		out = valuePoints(out, md.Name, d.DataPoints)
	case metricdata.Gauge[int64]:
		out = valuePoints(out, md.Name, d.DataPoints)
	case metricdata.Gauge[float64]:
		out = valuePoints(out, md.Name, d.DataPoints)
	case metricdata.Histogram[int64]:
		out = histogramPoints(out, md.Name, d.DataPoints)
	case metricdata.Histogram[float64]:
		out = histogramPoints(out, md.Name, d.DataPoints)
	}
	return out
}

func valuePoints[N int64 | float64](out []patrol.MetricPoint, name string, dps []metricdata.DataPoint[N]) []patrol.MetricPoint {
	for _, dp := range dps {
		out = append(out, patrol.MetricPoint{Name: name, Attrs: attrMap(dp.Attributes), Value: float64(dp.Value)})
	}
	return out
}

func histogramPoints[N int64 | float64](out []patrol.MetricPoint, name string, dps []metricdata.HistogramDataPoint[N]) []patrol.MetricPoint {
	for _, dp := range dps {
		out = append(out, patrol.MetricPoint{Name: name, Attrs: attrMap(dp.Attributes),
			Bounds: dp.Bounds, Counts: dp.BucketCounts, Value: float64(dp.Sum)})
	}
	return out
}

func attrMap(s attribute.Set) map[string]string {
	m := make(map[string]string, s.Len())
	for it := s.Iter(); it.Next(); {
		kv := it.Attribute()
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}
