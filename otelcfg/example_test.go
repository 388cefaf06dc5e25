package otelcfg_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/gopatrol/gopatrol/metricdef"
	"github.com/gopatrol/gopatrol/otelcfg"
)

// From the environment to a provider: validate OTEL_*, build the resource,
// start the exporters (here the console one, into a buffer), record, and
// shut down, which flushes.
func Example() {
	ctx := context.Background()
	// A real program passes os.LookupEnv.
	lookup := otelcfg.MapLookup(map[string]string{
		"OTEL_METRICS_EXPORTER":    "console",
		"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=staging",
		otelcfg.EnvK8sNodeName:     "node-1",
	})
	cfg, err := otelcfg.FromEnv(lookup)
	if err != nil {
		log.Fatal(err) // names the variable and what it accepts
	}
	res, err := otelcfg.NewResource(ctx, otelcfg.ResourceConfig{
		ServiceVersion: "v1.0.0",
		Lookup:         lookup,
		Detectors: []otelcfg.Detector{otelcfg.StaticDetector{Source: "config", Attrs: []attribute.KeyValue{
			attribute.String("cloud.region", "moon-1"),
		}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	var console bytes.Buffer
	p, err := otelcfg.New(ctx, cfg, res, otelcfg.Options{Console: &console, Version: "v1.0.0"})
	if err != nil {
		log.Fatal(err)
	}
	in, err := metricdef.NewInstruments(p.Meter())
	if err != nil {
		log.Fatal(err)
	}
	in.CheckResult.Record(ctx, 1, metric.WithAttributes(
		metricdef.AttrCheckID.String("go.binary"), metricdef.AttrCheckStatus.String("pass")))
	if err := p.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}

	// What the console exporter wrote: the resource and the point.
	var out struct {
		Resource []struct {
			Key   string
			Value struct{ Value any }
		}
		ScopeMetrics []struct {
			Scope   struct{ Name string }
			Metrics []struct {
				Name string
				Data struct{ DataPoints []struct{ Value float64 } }
			}
		}
	}
	if err := json.Unmarshal(console.Bytes(), &out); err != nil {
		log.Fatal(err)
	}
	for _, kv := range out.Resource {
		switch kv.Key {
		case "service.name", "deployment.environment.name", "k8s.node.name", "cloud.region":
			fmt.Printf("%s=%v\n", kv.Key, kv.Value.Value)
		}
	}
	for _, sm := range out.ScopeMetrics {
		for _, m := range sm.Metrics {
			fmt.Println(sm.Scope.Name, m.Name, m.Data.DataPoints[0].Value)
		}
	}
	// Output:
	// cloud.region=moon-1
	// deployment.environment.name=staging
	// k8s.node.name=node-1
	// service.name=gopatrol
	// github.com/gopatrol/gopatrol gopatrol.check.result 1
}
