package otelcfg

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
)

// FuzzFromEnv feeds FromEnv the OTEL_* variables an operator types (and
// a Helm chart templates): protocol, endpoints, insecure, headers and
// resource attributes. It checks that a rejection names the variable, that
// an accepted endpoint is an http(s) URL with a host whose scheme agrees
// with Insecure, and that a header value (a token, typically) never shows
// in an error, whatever else is wrong.
func FuzzFromEnv(f *testing.F) {
	type env struct{ protocol, endpoint, metricsEndpoint, insecure, headers, attrs string }
	for _, e := range []env{
		{"", "https://collector:4318/otlp/", "", "", "authorization=Bearer%20abc , x-tenant=t1", "k8s.cluster.name=prod"},
		{"grpc", "collector:4317", "", "true", "api-key=a%3Db", ""},
		{"http/protobuf", "https://generic:4318", "http://metrics:9000/custom", "", "", "service.name=x,a=%20b"},
		{"grpc", "http://[::1]:4317", "", "false", "", ""},
		// The malformed values the tests know.
		{"thrift", "", "", "", "", ""},
		{"http/json", "", "", "", "", ""},
		{"", "ftp://collector:4317", "", "", "authorization", ""},
		{"", "collector:4318", "", "", "a=1,=2", "k8s.cluster.name"},
		{"grpc", "collector", "", "maybe", "bad key=1", ""},
		{"", "", "https://:4318", "", "k=%zz", "a=%zz"},
		{"", "https://host:99999", "", "", "authorization=Bearer%20secret,bad key=1", ""},
		{"grpc", "[::1", "", "", ",,,", ",=,"},
	} {
		f.Add(e.protocol, e.endpoint, e.metricsEndpoint, e.insecure, e.headers, e.attrs)
	}
	const secret, password = "s3cr3t-T0KEN", "pa55-W0RD"
	f.Fuzz(func(t *testing.T, protocol, endpoint, metricsEndpoint, insecure, headers, attrs string) {
		vars := map[string]string{
			"OTEL_EXPORTER_OTLP_PROTOCOL":         protocol,
			"OTEL_EXPORTER_OTLP_ENDPOINT":         endpoint,
			"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": metricsEndpoint,
			"OTEL_EXPORTER_OTLP_INSECURE":         insecure,
			"OTEL_EXPORTER_OTLP_HEADERS":          headers + ",authorization=Bearer%20" + secret,
			"OTEL_RESOURCE_ATTRIBUTES":            attrs,
		}
		// An endpoint's password never shows in an error either.
		withPassword := maps.Clone(vars)
		delete(withPassword, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
		withPassword["OTEL_EXPORTER_OTLP_ENDPOINT"] = "https://gopatrol:" + password + "@" + endpoint
		if _, err := FromEnv(MapLookup(withPassword)); err != nil && strings.Contains(err.Error(), password) &&
			!strings.Contains(endpoint+headers+attrs, password[:4]) {
			t.Fatalf("error shows the endpoint's password: %q", err)
		}

		cfg, err := FromEnv(MapLookup(vars))
		if err != nil {
			msg := err.Error()
			named := false
			for name := range vars {
				named = named || strings.Contains(msg, name)
			}
			if !named {
				t.Fatalf("error %q names no variable", msg)
			}
			if strings.Contains(msg, secret) && !strings.Contains(headers+protocol+endpoint+metricsEndpoint+insecure+attrs, secret[:4]) {
				t.Fatalf("error shows a header value: %q", msg)
			}
			return
		}
		u, err := url.Parse(cfg.OTLP.Endpoint)
		if err != nil || u.Hostname() == "" || (u.Scheme != "http" && u.Scheme != "https") {
			t.Fatalf("endpoint %q accepted: %v", cfg.OTLP.Endpoint, err)
		}
		if cfg.OTLP.Insecure != (u.Scheme == "http") && strings.Contains(endpoint+metricsEndpoint, "://") {
			t.Fatalf("endpoint %q with Insecure=%v", cfg.OTLP.Endpoint, cfg.OTLP.Insecure)
		}
		if got := cfg.OTLP.Headers["authorization"]; got != "Bearer "+secret {
			t.Fatalf("last authorization header = %q, want the one set last", got)
		}
	})
}

// FuzzKeyValues checks the OTEL_EXPORTER_OTLP_HEADERS and
// OTEL_RESOURCE_ATTRIBUTES syntax: any list of token keys and values,
// percent-encoded and joined with commas, parses back to the same list,
// and for any input a parsed key is a non-empty token.
func FuzzKeyValues(f *testing.F) {
	for _, s := range []string{
		"authorization=Bearer%20abc , x-tenant=t1", "api-key=a%3Db", "k8s.cluster.name", "a=1,=2", "bad key=1", "k=%zz", "", ",", "a==b", "a=%2C,b=%25",
	} {
		f.Add(s, "key", "value with spaces, commas=and%")
	}
	f.Fuzz(func(t *testing.T, s, key, value string) {
		kvs, err := parseKeyValues("OTEL_EXPORTER_OTLP_HEADERS", s)
		if err == nil {
			if len(kvs) > strings.Count(s, ",")+1 {
				t.Fatalf("%d pairs from %q", len(kvs), s)
			}
			for _, kv := range kvs {
				if kv[0] == "" || strings.IndexFunc(kv[0], func(r rune) bool { return !isTokenRune(r) }) >= 0 {
					t.Fatalf("key %q from %q", kv[0], s)
				}
			}
		} else if !strings.HasPrefix(err.Error(), "OTEL_EXPORTER_OTLP_HEADERS=") {
			t.Fatalf("error %q does not start with the variable", err)
		}

		if key == "" || strings.IndexFunc(key, func(r rune) bool { return !isTokenRune(r) }) >= 0 {
			return
		}
		joined := "a=1," + key + "=" + url.PathEscape(value) + " , z=" + url.QueryEscape(value)
		kvs, err = parseKeyValues("OTEL_RESOURCE_ATTRIBUTES", joined)
		if err != nil || len(kvs) != 3 || kvs[1] != [2]string{key, value} {
			t.Fatalf("parseKeyValues(%q) = %q, %v; want %q=%q in the middle", joined, kvs, err, key, value)
		}
	})
}

// FuzzResourceAttributes checks that OTEL_RESOURCE_ATTRIBUTES reaches
// the resource as the specification says: every valid key with the first
// value given for it, unless OTEL_SERVICE_NAME overrides service.name.
func FuzzResourceAttributes(f *testing.F) {
	f.Add("k8s.cluster.name=prod,service.name=x,a=%20b", "svc")
	f.Add("a=1,a=2,host.name=h%2C1", "")
	f.Add("k8s.cluster.name", "")
	f.Add("x=%zz", "s")
	root := f.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, attrs, service string) {
		vars := map[string]string{"OTEL_RESOURCE_ATTRIBUTES": attrs, "OTEL_SERVICE_NAME": service}
		res, err := NewResource(context.Background(), ResourceConfig{
			Root: root, Lookup: MapLookup(vars), Logger: log,
			Hostname: func() (string, error) { return "fuzz-host", nil },
		})
		kvs, perr := parseKeyValues("OTEL_RESOURCE_ATTRIBUTES", strings.TrimSpace(attrs))
		if strings.TrimSpace(attrs) == "" {
			kvs, perr = nil, nil
		}
		if (err == nil) != (perr == nil) {
			t.Fatalf("NewResource error %v, parse error %v", err, perr)
		}
		if err != nil {
			return
		}
		first := map[string]string{}
		for _, kv := range kvs {
			if _, ok := first[kv[0]]; !ok {
				first[kv[0]] = kv[1]
			}
		}
		if s := strings.TrimSpace(service); s != "" {
			first["service.name"] = s
		}
		for k, v := range first {
			got, ok := res.Set().Value(attribute.Key(k))
			if !ok || got.Emit() != v {
				t.Fatalf("resource %s = %q (%v), want %q from %q", k, got.Emit(), ok, v, attrs)
			}
		}
	})
}
