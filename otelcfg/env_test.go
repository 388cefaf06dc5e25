package otelcfg

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/otelcfg/otlptest"
)

func TestFromEnvRejectsMalformed(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o644)
	tests := []struct {
		env      map[string]string
		variable string // the error must name it
		value    string // and the value
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "authorization"}, "OTEL_EXPORTER_OTLP_HEADERS", "authorization"},
		{map[string]string{"OTEL_EXPORTER_OTLP_METRICS_HEADERS": "a=1,=2"}, "OTEL_EXPORTER_OTLP_METRICS_HEADERS", `"=***" is not key=value`},
		{map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "bad key=1"}, "OTEL_EXPORTER_OTLP_HEADERS", "bad key"},
		{map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "k=%zz"}, "OTEL_EXPORTER_OTLP_HEADERS", "%zz"},
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}, "OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"},
		{map[string]string{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, "OTEL_EXPORTER_OTLP_TIMEOUT", "10s"},
		{map[string]string{"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "-5"}, "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "-5"},
		{map[string]string{"OTEL_METRIC_EXPORT_INTERVAL": "1m"}, "OTEL_METRIC_EXPORT_INTERVAL", "1m"},
		{map[string]string{"OTEL_METRIC_EXPORT_TIMEOUT": "soon"}, "OTEL_METRIC_EXPORT_TIMEOUT", "soon"},
		{map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"},
		{map[string]string{"OTEL_EXPORTER_OTLP_INSECURE": "maybe"}, "OTEL_EXPORTER_OTLP_INSECURE", "maybe"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://collector:4317"}, "OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector:4317"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"},
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "collector"}, "OTEL_EXPORTER_OTLP_ENDPOINT", "collector"},
		{map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "https://:4318"}, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "https://:4318"},
		{map[string]string{"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "sometimes"}, "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "sometimes"},
		{map[string]string{"OTEL_METRICS_EXPORTER": "otlp,zipkin"}, "OTEL_METRICS_EXPORTER", "zipkin"},
		{map[string]string{"OTEL_METRICS_EXPORTER": "none,console"}, "OTEL_METRICS_EXPORTER", "none,console"},
		{map[string]string{"OTEL_EXPORTER_PROMETHEUS_PORT": "99999"}, "OTEL_EXPORTER_PROMETHEUS_PORT", "99999"},
		{map[string]string{"OTEL_SDK_DISABLED": "yes please"}, "OTEL_SDK_DISABLED", "yes please"},
		{map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "k8s.cluster.name"}, "OTEL_RESOURCE_ATTRIBUTES", "k8s.cluster.name"},
		{map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": "/no/such/ca.pem"}, "OTEL_EXPORTER_OTLP_CERTIFICATE", "/no/such/ca.pem"},
		{map[string]string{"OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE": notPEM}, "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", notPEM},
		{map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": notPEM}, "OTEL_EXPORTER_OTLP_CLIENT_KEY", notPEM},
		{map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": notPEM, "OTEL_EXPORTER_OTLP_CLIENT_KEY": notPEM}, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", notPEM},
		{map[string]string{"OTEL_CONFIG_FILE": "/no/such/otel.yaml"}, "OTEL_CONFIG_FILE", "/no/such/otel.yaml"},
		{map[string]string{"OTEL_CONFIG_FILE": notPEM}, "OTEL_CONFIG_FILE", notPEM},
	}
	for _, tt := range tests {
		_, err := FromEnv(MapLookup(tt.env))
		if err == nil {
			t.Errorf("%v: accepted", tt.env)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tt.variable) || !strings.Contains(msg, tt.value) {
			t.Errorf("%v: error %q does not name %s and %q", tt.env, msg, tt.variable, tt.value)
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("%v: error is not one line: %q", tt.env, msg)
		}
	}
}

func TestFromEnv(t *testing.T) {
	ca := otlptest.NewCA(t)
	_, certFile, keyFile := ca.Issue(t, "client")
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c Config)
	}{
		{"defaults", nil, func(t *testing.T, c Config) {
			want := OTLPConfig{Protocol: ProtocolHTTPProtobuf, Endpoint: "http://localhost:4318/v1/metrics", Insecure: true,
				Timeout: 10 * time.Second, Compression: "none", Temporality: TemporalityCumulative}
			if c.OTLP.Protocol != want.Protocol || c.OTLP.Endpoint != want.Endpoint || c.OTLP.Insecure != want.Insecure ||
				c.OTLP.Timeout != want.Timeout || c.OTLP.Compression != want.Compression || c.OTLP.Temporality != want.Temporality {
				t.Errorf("OTLP = %+v, want %+v", c.OTLP, want)
			}
			if len(c.Exporters) != 1 || c.Exporters[0] != ExporterOTLP || c.Interval != time.Minute || c.Timeout != 30*time.Second {
				t.Errorf("exporters %v interval %v timeout %v", c.Exporters, c.Interval, c.Timeout)
			}
			if c.PrometheusAddr != "localhost:9464" {
				t.Errorf("prometheus %q", c.PrometheusAddr)
			}
		}},
		{"generic HTTP endpoint gets /v1/metrics", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318/otlp/"}, func(t *testing.T, c Config) {
			if c.OTLP.Endpoint != "https://collector:4318/otlp/v1/metrics" || c.OTLP.Insecure {
				t.Errorf("endpoint %q insecure %v", c.OTLP.Endpoint, c.OTLP.Insecure)
			}
		}},
		{"metric endpoint used as is and wins", map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT":         "https://generic:4318",
			"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://metrics:9000/custom",
		}, func(t *testing.T, c Config) {
			if c.OTLP.Endpoint != "http://metrics:9000/custom" || !c.OTLP.Insecure {
				t.Errorf("endpoint %q insecure %v", c.OTLP.Endpoint, c.OTLP.Insecure)
			}
		}},
		{"grpc host:port with insecure", map[string]string{
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317", "OTEL_EXPORTER_OTLP_INSECURE": "true",
		}, func(t *testing.T, c Config) {
			if c.OTLP.Endpoint != "http://collector:4317" || !c.OTLP.Insecure {
				t.Errorf("endpoint %q insecure %v", c.OTLP.Endpoint, c.OTLP.Insecure)
			}
		}},
		{"headers, timeout, compression, temporality, TLS", map[string]string{
			"OTEL_EXPORTER_OTLP_HEADERS":                        "authorization=Bearer%20abc , x-tenant=t1",
			"OTEL_EXPORTER_OTLP_METRICS_HEADERS":                "x-tenant=t2",
			"OTEL_EXPORTER_OTLP_TIMEOUT":                        "2500",
			"OTEL_EXPORTER_OTLP_COMPRESSION":                    "GZIP",
			"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "LowMemory",
			"OTEL_EXPORTER_OTLP_CERTIFICATE":                    ca.PEMFile,
			"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE":             certFile,
			"OTEL_EXPORTER_OTLP_CLIENT_KEY":                     keyFile,
			"OTEL_METRICS_EXPORTER":                             "otlp, console,prometheus",
			"OTEL_EXPORTER_PROMETHEUS_HOST":                     "127.0.0.1",
			"OTEL_EXPORTER_PROMETHEUS_PORT":                     "0",
		}, func(t *testing.T, c Config) {
			// The metric-specific variable replaces the generic one whole.
			if len(c.OTLP.Headers) != 1 || c.OTLP.Headers["x-tenant"] != "t2" {
				t.Errorf("headers %v", c.OTLP.Headers)
			}
			if c.OTLP.Timeout != 2500*time.Millisecond || c.OTLP.Compression != "gzip" || c.OTLP.Temporality != TemporalityLowMemory {
				t.Errorf("timeout %v compression %q temporality %q", c.OTLP.Timeout, c.OTLP.Compression, c.OTLP.Temporality)
			}
			if c.OTLP.TLS == nil || c.OTLP.TLS.RootCAs == nil || len(c.OTLP.TLS.Certificates) != 1 {
				t.Errorf("TLS %+v", c.OTLP.TLS)
			}
			if strings.Join(c.Exporters, ",") != "otlp,console,prometheus" || c.PrometheusAddr != "127.0.0.1:0" {
				t.Errorf("exporters %v prometheus %q", c.Exporters, c.PrometheusAddr)
			}
		}},
		{"header values decoded", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc,api-key=a%3Db"}, func(t *testing.T, c Config) {
			if c.OTLP.Headers["authorization"] != "Bearer abc" || c.OTLP.Headers["api-key"] != "a=b" {
				t.Errorf("headers %v", c.OTLP.Headers)
			}
		}},
		{"none", map[string]string{"OTEL_METRICS_EXPORTER": "none"}, func(t *testing.T, c Config) {
			if len(c.Exporters) != 0 {
				t.Errorf("exporters %v", c.Exporters)
			}
		}},
		{"sdk disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_TIMEOUT": "ignored"}, func(t *testing.T, c Config) {
			if len(c.Exporters) != 0 {
				t.Errorf("exporters %v", c.Exporters)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromEnv(MapLookup(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}
