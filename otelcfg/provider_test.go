package otelcfg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/gopatrol/gopatrol/metricdef"
	"github.com/gopatrol/gopatrol/otelcfg/otlptest"
)

// testResource is a resource as gopatrol builds it, from a fake root.
func testResource(t testing.TB) *resource.Resource {
	t.Helper()
	root := fakeRoot(t, map[string]string{"etc/machine-id": "feedfacefeedfacefeedfacefeedface\n"})
	res, err := NewResource(context.Background(), ResourceConfig{
		Root: root, ServiceVersion: "test",
		Lookup:   MapLookup(map[string]string{EnvK8sNodeName: "node-1"}),
		Hostname: func() (string, error) { return "testhost", nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// record writes one sample of the doctor's metrics and one of a counter.
func record(t testing.TB, p *Provider) {
	t.Helper()
	in, err := metricdef.NewInstruments(p.Meter())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	in.CheckResult.Record(ctx, 1, metric.WithAttributes(metricdef.AttrCheckID.String("go.binary"), metricdef.AttrCheckStatus.String("fail")))
	in.CheckResult.Record(ctx, 0, metric.WithAttributes(metricdef.AttrCheckID.String("go.binary"), metricdef.AttrCheckStatus.String("pass")))
	in.CheckDuration.Record(ctx, 0.25, metric.WithAttributes(metricdef.AttrCheckID.String("go.binary"), metricdef.AttrCheckStatus.String("fail")))
	in.HealthScore.Record(ctx, 0.5)
	in.ToolchainExecs.Add(ctx, 3, metric.WithAttributes(metricdef.AttrExecutableName.String("compile")))
}

// newProvider builds a Provider from environment variables, as a user
// configures one.
func newProvider(t testing.TB, env map[string]string, res *resource.Resource) *Provider {
	t.Helper()
	cfg, err := FromEnv(MapLookup(env))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(context.Background(), cfg, res, Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func shutdown(p *Provider) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeout())
	defer cancel()
	return p.Shutdown(ctx)
}

func TestOTLPExport(t *testing.T) {
	ca := otlptest.NewCA(t)
	_, clientCert, clientKey := ca.Issue(t, "client")
	plain := otlptest.Start(t, otlptest.Options{})
	withTLS := otlptest.Start(t, otlptest.Options{TLS: ca.ServerTLS(t, false)})
	withMTLS := otlptest.Start(t, otlptest.Options{TLS: ca.ServerTLS(t, true)})
	res := testResource(t)

	tests := []struct {
		name     string
		recv     *otlptest.Receiver
		protocol string
		extra    map[string]string
		gzip     bool
	}{
		{"grpc", plain, "grpc", nil, false},
		{"http", plain, "http/protobuf", nil, false},
		{"grpc TLS custom CA, headers, gzip", withTLS, "grpc", map[string]string{
			"OTEL_EXPORTER_OTLP_CERTIFICATE": ca.PEMFile, "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20s3cret,x-tenant=team-go",
			"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}, true},
		{"http TLS custom CA, headers, gzip", withTLS, "http/protobuf", map[string]string{
			"OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE": ca.PEMFile, "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "authorization=Bearer%20s3cret,x-tenant=team-go",
			"OTEL_EXPORTER_OTLP_METRICS_COMPRESSION": "gzip"}, true},
		{"grpc mTLS", withMTLS, "grpc", map[string]string{
			"OTEL_EXPORTER_OTLP_CERTIFICATE": ca.PEMFile, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": clientCert, "OTEL_EXPORTER_OTLP_CLIENT_KEY": clientKey}, false},
		{"http mTLS", withMTLS, "http/protobuf", map[string]string{
			"OTEL_EXPORTER_OTLP_CERTIFICATE": ca.PEMFile, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": clientCert, "OTEL_EXPORTER_OTLP_CLIENT_KEY": clientKey}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(tt.recv.Requests())
			endpoint := tt.recv.GRPCEndpoint
			if tt.protocol != "grpc" {
				endpoint = tt.recv.HTTPEndpoint
			}
			env := map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": tt.protocol, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_TIMEOUT": "5000"}
			for k, v := range tt.extra {
				env[k] = v
			}
			p := newProvider(t, env, res)
			record(t, p)
			if err := shutdown(p); err != nil {
				t.Fatalf("export: %v", err)
			}
			reqs := tt.recv.Requests()[before:]
			if len(reqs) != 1 {
				t.Fatalf("receiver got %d exports, want 1", len(reqs))
			}
			req := reqs[0]
			if want := strings.TrimSuffix(tt.protocol, "/protobuf"); req.Protocol != want {
				t.Errorf("arrived over %s, want %s", req.Protocol, want)
			}
			if req.Gzip != tt.gzip {
				t.Errorf("gzip = %v, want %v", req.Gzip, tt.gzip)
			}
			if tt.extra["OTEL_EXPORTER_OTLP_HEADERS"]+tt.extra["OTEL_EXPORTER_OTLP_METRICS_HEADERS"] != "" {
				if req.Headers["authorization"] != "Bearer s3cret" || req.Headers["x-tenant"] != "team-go" {
					t.Errorf("headers: authorization %q x-tenant %q", req.Headers["authorization"], req.Headers["x-tenant"])
				}
			}
			assertDoctorMetrics(t, reqs)
		})
	}
}

// assertDoctorMetrics checks what record sent: names, units, attributes,
// values, and the resource.
func assertDoctorMetrics(t *testing.T, reqs []otlptest.Request) {
	t.Helper()
	type key struct{ metric, attrs string }
	got := map[key]otlptest.Point{}
	for _, p := range otlptest.Points(reqs) {
		got[key{p.Metric, fmt.Sprint(p.Attrs)}] = p
		if p.Scope != ScopeName || p.SchemaURL != SchemaURL {
			t.Errorf("%s: scope %q schema %q", p.Metric, p.Scope, p.SchemaURL)
		}
	}
	want := []struct {
		metric, unit, kind string
		attrs              map[string]string
		value              float64
	}{
		{"gopatrol.check.result", "1", "gauge", map[string]string{"gopatrol.check.id": "go.binary", "gopatrol.check.status": "fail"}, 1},
		{"gopatrol.check.result", "1", "gauge", map[string]string{"gopatrol.check.id": "go.binary", "gopatrol.check.status": "pass"}, 0},
		{"gopatrol.check.duration", "s", "histogram", map[string]string{"gopatrol.check.id": "go.binary", "gopatrol.check.status": "fail"}, 0.25},
		{"gopatrol.health.score", "1", "gauge", map[string]string{}, 0.5},
		{"gopatrol.toolchain.execs", "{exec}", "sum", map[string]string{"process.executable.name": "compile"}, 3},
	}
	for _, w := range want {
		p, ok := got[key{w.metric, fmt.Sprint(w.attrs)}]
		if !ok {
			t.Errorf("no point %s %v; got %v", w.metric, w.attrs, got)
			continue
		}
		if p.Unit != w.unit || p.Kind != w.kind || p.Value != w.value {
			t.Errorf("%s %v: unit %q kind %s value %v, want %q %s %v", w.metric, w.attrs, p.Unit, p.Kind, p.Value, w.unit, w.kind, w.value)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d points, want %d", len(got), len(want))
	}
	resAttrs, schema := otlptest.Resource(reqs)
	for k, v := range map[string]string{"service.name": "gopatrol", "service.version": "test", "host.id": "feedfacefeedfacefeedfacefeedface",
		"host.name": "testhost", "os.type": "linux", "k8s.node.name": "node-1"} {
		if resAttrs[k] != v {
			t.Errorf("resource %s = %q, want %q", k, resAttrs[k], v)
		}
	}
	if resAttrs["service.instance.id"] == "" {
		t.Errorf("resource has no service.instance.id")
	}
	if schema != SchemaURL {
		t.Errorf("resource schema URL %q, want %q", schema, SchemaURL)
	}
}

// deadEndpoint is an address where nothing listens.
func deadEndpoint(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestExportFailures(t *testing.T) {
	ca, otherCA := otlptest.NewCA(t), otlptest.NewCA(t)
	dead := deadEndpoint(t)
	tlsRecv := otlptest.Start(t, otlptest.Options{TLS: ca.ServerTLS(t, false)})
	rejecting := otlptest.Start(t, otlptest.Options{})
	rejecting.Reject("metric name gopatrol.check.result is not allowed")
	partial := otlptest.Start(t, otlptest.Options{})
	partial.PartialSuccess(2, "2 points over the tenant's limit")
	res := testResource(t)

	tests := []struct {
		name, protocol, endpoint string
		extra                    map[string]string
		cause                    string // the message must say why
	}{
		{"grpc receiver down", "grpc", "http://" + dead, nil, "connection refused"},
		{"http receiver down", "http/protobuf", "http://" + dead + "/v1/metrics", nil, "connection refused"},
		{"grpc TLS with the wrong CA", "grpc", tlsRecv.GRPCEndpoint, map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": otherCA.PEMFile}, "certificate"},
		{"http TLS with the wrong CA", "http/protobuf", tlsRecv.HTTPEndpoint, map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": otherCA.PEMFile}, "certificate"},
		{"grpc collector rejects", "grpc", rejecting.GRPCEndpoint, nil, "is not allowed"},
		{"http collector rejects", "http/protobuf", rejecting.HTTPEndpoint, nil, "is not allowed"},
		{"grpc partial success", "grpc", partial.GRPCEndpoint, nil, "2 points over the tenant's limit (2 metric data points rejected)"},
		{"http partial success", "http/protobuf", partial.HTTPEndpoint, nil, "2 points over the tenant's limit (2 metric data points rejected)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const timeout = 1500 * time.Millisecond
			env := map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": tt.protocol, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": tt.endpoint,
				"OTEL_EXPORTER_OTLP_TIMEOUT": fmt.Sprint(timeout.Milliseconds())}
			for k, v := range tt.extra {
				env[k] = v
			}
			p := newProvider(t, env, res)
			record(t, p)
			start := time.Now()
			err := shutdown(p)
			elapsed := time.Since(start)
			if err == nil {
				t.Fatal("export succeeded")
			}
			var ee *ExportError
			if !errors.As(err, &ee) || ee.Endpoint != tt.endpoint {
				t.Errorf("error %T does not name the endpoint %s: %v", err, tt.endpoint, err)
			}
			msg := err.Error()
			t.Logf("%s after %v", msg, elapsed.Round(time.Millisecond))
			if !strings.HasPrefix(msg, "export to "+tt.endpoint+": ") || !strings.Contains(msg, tt.cause) || strings.Contains(msg, "\n") {
				t.Errorf("message %q: want one line, the endpoint and %q", msg, tt.cause)
			}
			if elapsed > timeout+3*time.Second { // slack for a loaded 2-core CI; a retry loop would take a minute
				t.Errorf("failed after %v, timeout %v", elapsed, timeout)
			}
		})
	}
}

func TestTemporalityPreference(t *testing.T) {
	recv := otlptest.Start(t, otlptest.Options{})
	res := testResource(t)
	for pref, want := range map[string]string{"cumulative": "CUMULATIVE", "delta": "DELTA", "lowmemory": "DELTA"} {
		before := len(recv.Requests())
		p := newProvider(t, map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": recv.GRPCEndpoint,
			"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": pref}, res)
		record(t, p)
		if err := shutdown(p); err != nil {
			t.Fatal(err)
		}
		for _, pt := range otlptest.Points(recv.Requests()[before:]) {
			if pt.Metric == "gopatrol.toolchain.execs" || pt.Metric == "gopatrol.check.duration" {
				if pt.Temporality != want {
					t.Errorf("%s: %s temporality %s, want %s", pref, pt.Metric, pt.Temporality, want)
				}
			}
		}
	}
}

func TestPrometheusEndpoint(t *testing.T) {
	p := newProvider(t, map[string]string{"OTEL_METRICS_EXPORTER": "prometheus",
		"OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1", "OTEL_EXPORTER_PROMETHEUS_PORT": "0"}, testResource(t))
	defer shutdown(p)
	record(t, p)
	resp, err := http.Get("http://" + p.PrometheusAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape does not parse: %v", err)
	}
	result := families["gopatrol_check_result_ratio"]
	if result == nil {
		names := []string{}
		for n := range families {
			names = append(names, n)
		}
		t.Fatalf("no gopatrol_check_result_ratio in the scrape; families %v", names)
	}
	found := false
	for _, m := range result.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["gopatrol_check_id"] == "go.binary" && labels["gopatrol_check_status"] == "fail" && m.GetGauge().GetValue() == 1 {
			found = true
		}
	}
	if !found {
		t.Errorf("no gopatrol_check_result_ratio{gopatrol_check_id=go.binary,gopatrol_check_status=fail} 1: %v", result)
	}
	for _, name := range []string{"gopatrol_check_duration_seconds", "gopatrol_health_score_ratio", "gopatrol_toolchain_execs_total", "target_info"} {
		if families[name] == nil {
			t.Errorf("no %s in the scrape", name)
		}
	}
	if f := families["gopatrol_check_duration_seconds"]; f != nil && f.GetMetric()[0].GetHistogram().GetSampleSum() != 0.25 {
		t.Errorf("gopatrol_check_duration_seconds sum %v, want 0.25", f.GetMetric()[0].GetHistogram().GetSampleSum())
	}
	if f := families["target_info"]; f != nil {
		found := false
		for _, l := range f.GetMetric()[0].GetLabel() {
			if l.GetName() == "host_id" && l.GetValue() == "feedfacefeedfacefeedfacefeedface" {
				found = true
			}
		}
		if !found {
			t.Errorf("target_info has no host_id label: %v", f)
		}
	}
}

func TestPrometheusAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	cfg, err := FromEnv(MapLookup(map[string]string{"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1", "OTEL_EXPORTER_PROMETHEUS_PORT": port}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), cfg, testResource(t), Options{})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:"+port) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("listen on a used port: %v", err)
	}
}

func TestConsoleExporter(t *testing.T) {
	cfg, err := FromEnv(MapLookup(map[string]string{"OTEL_METRICS_EXPORTER": "console"}))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	p, err := New(context.Background(), cfg, testResource(t), Options{Console: &out})
	if err != nil {
		t.Fatal(err)
	}
	record(t, p)
	if err := shutdown(p); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"gopatrol.check.result"`, `"gopatrol.check.id"`, `"go.binary"`, `"feedfacefeedfacefeedfacefeedface"`} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("console output lacks %s", w)
		}
	}
}

func TestConfigFile(t *testing.T) {
	recv := otlptest.Start(t, otlptest.Options{})
	path := filepath.Join(t.TempDir(), "otel.yaml")
	yaml := fmt.Sprintf(`file_format: "1.0"
resource:
  attributes:
    - name: deployment.environment.name
      value: staging
    - name: host.name
      value: from-the-file
meter_provider:
  readers:
    - periodic:
        interval: 60000
        exporter:
          otlp_http:
            endpoint: %s
`, recv.HTTPEndpoint)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := FromEnv(MapLookup(map[string]string{"OTEL_CONFIG_FILE": path, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:1"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != path || cfg.FileConfig == nil {
		t.Fatalf("config %+v", cfg)
	}
	p, err := New(context.Background(), cfg, testResource(t), Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Endpoint() != recv.HTTPEndpoint {
		t.Errorf("endpoint %q, want %q", p.Endpoint(), recv.HTTPEndpoint)
	}
	record(t, p)
	if err := shutdown(p); err != nil {
		t.Fatal(err)
	}
	reqs := recv.Wait(t, 1, 5*time.Second)
	attrs, schema := otlptest.Resource(reqs)
	if attrs["deployment.environment.name"] != "staging" || attrs["host.name"] != "from-the-file" || attrs["host.id"] != "feedfacefeedfacefeedfacefeedface" || attrs["service.name"] != "gopatrol" {
		t.Errorf("resource %v: want the file's attributes over gopatrol's", attrs)
	}
	if schema != SchemaURL {
		t.Errorf("schema %q", schema)
	}
	names := map[string]bool{}
	for _, pt := range otlptest.Points(reqs) {
		names[pt.Metric] = true
	}
	if !names["gopatrol.check.result"] || !names["gopatrol.health.score"] {
		t.Errorf("metrics %v", names)
	}

	// Still set in the process environment, otelconf would re-read it
	// and drop gopatrol's resource: refused, not silently wrong.
	t.Setenv("OTEL_CONFIG_FILE", path)
	if _, err := New(context.Background(), cfg, testResource(t), Options{}); err == nil || !strings.Contains(err.Error(), "OTEL_CONFIG_FILE") {
		t.Errorf("New with OTEL_CONFIG_FILE still set: %v", err)
	}
}
