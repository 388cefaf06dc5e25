package otelcfg_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/gopatrol/gopatrol/otelcfg"
	"github.com/gopatrol/gopatrol/otelcfg/otlptest"
)

func TestTracesFromEnv(t *testing.T) {
	tests := []struct {
		env       map[string]string
		exporters []string
		endpoint  string
		protocol  string
		err       string
	}{
		{env: nil, exporters: []string{"otlp"}, endpoint: "http://localhost:4318/v1/traces", protocol: "http/protobuf"},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}, exporters: nil},
		{env: map[string]string{"OTEL_SDK_DISABLED": "true"}, exporters: nil},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "console, otlp"}, exporters: []string{"console", "otlp"}, endpoint: "http://localhost:4318/v1/traces", protocol: "http/protobuf"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318/base"}, exporters: []string{"otlp"}, endpoint: "https://collector:4318/base/v1/traces", protocol: "http/protobuf"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://tempo:4318/custom"}, exporters: []string{"otlp"}, endpoint: "https://tempo:4318/custom", protocol: "http/protobuf"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, exporters: []string{"otlp"}, endpoint: "http://collector:4317", protocol: "grpc"},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "jaeger"}, err: `OTEL_TRACES_EXPORTER="jaeger"`},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "none,otlp"}, err: "none cannot be combined"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, err: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://x"}, err: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
	}
	for _, tt := range tests {
		cfg, err := otelcfg.TracesFromEnv(otelcfg.MapLookup(tt.env))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%v: err %v, want one with %q", tt.env, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tt.env, err)
			continue
		}
		if strings.Join(cfg.Exporters, ",") != strings.Join(tt.exporters, ",") {
			t.Errorf("%v: exporters %v, want %v", tt.env, cfg.Exporters, tt.exporters)
		}
		if len(tt.exporters) > 0 && (cfg.OTLP.Endpoint != tt.endpoint || cfg.OTLP.Protocol != tt.protocol) {
			t.Errorf("%v: endpoint %s %s, want %s %s", tt.env, cfg.OTLP.Protocol, cfg.OTLP.Endpoint, tt.protocol, tt.endpoint)
		}
	}
}

// Spans reach the real receiver over both protocols, configured from the
// environment, in gopatrol's scope.
func TestTracerProviderExports(t *testing.T) {
	r := otlptest.Start(t, otlptest.Options{})
	for _, proto := range []string{"grpc", "http/protobuf"} {
		endpoint := r.GRPCEndpoint
		if proto == "http/protobuf" {
			endpoint = strings.TrimSuffix(r.HTTPTracesEndpoint, "/v1/traces")
		}
		cfg, err := otelcfg.TracesFromEnv(otelcfg.MapLookup(map[string]string{
			"OTEL_EXPORTER_OTLP_PROTOCOL": proto, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
			"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-tenant=builds",
		}))
		if err != nil {
			t.Fatal(err)
		}
		tp, err := otelcfg.NewTracerProvider(context.Background(), cfg, resource.Empty(), otelcfg.Options{Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		_, span := tp.Tracer().Start(context.Background(), "span over "+proto)
		span.End()
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Fatalf("%s: %v", proto, err)
		}
	}
	spans := r.WaitSpans(t, 10*time.Second, func(s []otlptest.Span) bool { return len(s) >= 2 })
	names := map[string]bool{}
	for _, s := range spans {
		names[s.Name] = true
		if s.Scope != otelcfg.ScopeName {
			t.Errorf("span %s: scope %q", s.Name, s.Scope)
		}
	}
	if !names["span over grpc"] || !names["span over http/protobuf"] {
		t.Errorf("spans %v", names)
	}
}
