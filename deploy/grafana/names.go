package grafana

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/gopatrol/gopatrol/metricdef"
)

// PromNames maps each catalogue instrument's name to the metric family
// the OpenTelemetry Prometheus exporter turns it into (gopatrol.toolchain.execs
// → gopatrol_toolchain_execs_total): the same translation the Collector's
// prometheusremotewrite exporter applies. It runs the exporter rather than
// re-deriving its rules, so a change of the SDK's translation changes the
// board at the next `make generate` and fails its staleness test until
// then.
func PromNames() (map[string]string, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	defer mp.Shutdown(context.Background())
	m := mp.Meter("github.com/gopatrol/gopatrol/deploy/grafana")
	ctx := context.Background()
	// One point per instrument, tagged with its name so that the family
	// it lands in can be traced back to it.
	const tag = "gopatrol_board_instrument"
	for _, s := range metricdef.Catalogue {
		attrs := metric.WithAttributes(attribute.String(tag, s.Name))
		switch s.Kind {
		case metricdef.KindCounter:
			c, err := m.Float64Counter(s.Name, metric.WithUnit(s.Unit))
			if err != nil {
				return nil, err
			}
			c.Add(ctx, 1, attrs)
		case metricdef.KindHistogram:
			h, err := m.Float64Histogram(s.Name, metric.WithUnit(s.Unit))
			if err != nil {
				return nil, err
			}
			h.Record(ctx, 1, attrs)
		case metricdef.KindGauge:
			g, err := m.Float64Gauge(s.Name, metric.WithUnit(s.Unit))
			if err != nil {
				return nil, err
			}
			g.Record(ctx, 1, attrs)
		default:
			return nil, fmt.Errorf("%s: kind %q: the board knows Counter, Histogram and Gauge", s.Name, s.Kind)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather: %w", err)
	}
	names := map[string]string{}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == tag {
					names[l.GetValue()] = f.GetName()
				}
			}
		}
	}
	for _, s := range metricdef.Catalogue {
		if names[s.Name] == "" {
			return nil, fmt.Errorf("%s: the Prometheus exporter exported nothing for it", s.Name)
		}
	}
	return names, nil
}

// Label is the Prometheus label an attribute key becomes.
func Label(k attribute.Key) string { return strings.ReplaceAll(string(k), ".", "_") }
