package otelcfg

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/otelconf"
)

// Exporter names of OTEL_METRICS_EXPORTER.
const (
	ExporterOTLP       = "otlp"
	ExporterPrometheus = "prometheus"
	ExporterConsole    = "console"
	ExporterNone       = "none"
)

// OTLP protocols of OTEL_EXPORTER_OTLP_PROTOCOL.
const (
	ProtocolGRPC         = "grpc"
	ProtocolHTTPProtobuf = "http/protobuf"
)

// Temporality preferences of OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE.
const (
	TemporalityCumulative = "cumulative"
	TemporalityDelta      = "delta"
	TemporalityLowMemory  = "lowmemory"
)

// Config is what the MeterProvider is built from. FromEnv fills it from the
// standard variables; the agent may fill it from its own config file.
type Config struct {
	// Exporters are the metric exporters to run: otlp, prometheus, console.
	// Empty means none.
	Exporters []string
	OTLP      OTLPConfig
	// Interval and Timeout are the periodic reader's export interval and
	// per-export deadline (OTEL_METRIC_EXPORT_INTERVAL / _TIMEOUT).
	Interval, Timeout time.Duration
	// PrometheusAddr is the host:port the pull endpoint listens on.
	PrometheusAddr string
	// File is the path of an OpenTelemetry declarative configuration file
	// (OTEL_CONFIG_FILE); when set, FileConfig replaces everything above.
	File       string
	FileConfig *otelconf.OpenTelemetryConfiguration
}

// OTLPConfig is the OTLP metric exporter's configuration.
type OTLPConfig struct {
	Protocol string // grpc or http/protobuf
	// Endpoint is a URL: scheme http or https, host and port; for
	// http/protobuf also the path (/v1/metrics).
	Endpoint    string
	Insecure    bool // plaintext: from an http:// endpoint or OTEL_EXPORTER_OTLP_INSECURE
	Headers     map[string]string
	Timeout     time.Duration
	Compression string // gzip or none
	Temporality string // cumulative, delta or lowmemory
	// TLS carries the CA and client certificate of the *_CERTIFICATE and
	// *_CLIENT_* variables; nil means the system roots.
	TLS *tls.Config
}

// Defaults of the OpenTelemetry specification.
const (
	defaultOTLPTimeout    = 10 * time.Second
	defaultExportInterval = 60 * time.Second
	defaultExportTimeout  = 30 * time.Second
	defaultGRPCEndpoint   = "http://localhost:4317"
	defaultHTTPEndpoint   = "http://localhost:4318"
	metricsPath           = "/v1/metrics"
)

// envError names the variable and its value, the way a user typed it.
func envError(name, value, want string) error {
	return fmt.Errorf("%s=%q: %s", name, value, want)
}

// lookupFunc is os.LookupEnv's shape, so tests pass a map instead of
// touching the process environment.
type lookupFunc func(string) (string, bool)

// MapLookup adapts a map to FromEnv's lookup.
func MapLookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// env reads variables; an empty value counts as unset, as the
// specification says.
type env struct{ lookup lookupFunc }

func (e env) get(name string) string {
	v, _ := e.lookup(name)
	return strings.TrimSpace(v)
}

// metric returns the metric-specific variable if set, else the generic one,
// and the name of the one it read (for error messages).
func (e env) metric(suffix string) (name, value string) {
	specific := "OTEL_EXPORTER_OTLP_METRICS_" + suffix
	if v := e.get(specific); v != "" {
		return specific, v
	}
	generic := "OTEL_EXPORTER_OTLP_" + suffix
	return generic, e.get(generic)
}

// FromEnv reads and validates the OTEL_* variables that concern metrics.
// lookup is os.LookupEnv or MapLookup(...). Every malformed value is an
// error naming the variable: the exporters themselves would ignore it.
func FromEnv(lookup func(string) (string, bool)) (Config, error) {
	e := env{lookup}
	if path := e.get("OTEL_CONFIG_FILE"); path != "" {
		return fileConfig(path)
	}
	if _, ok := lookup("OTEL_EXPERIMENTAL_CONFIG_FILE"); ok {
		return Config{}, fmt.Errorf("OTEL_EXPERIMENTAL_CONFIG_FILE is no longer supported: use OTEL_CONFIG_FILE")
	}
	var cfg Config
	if disabled, err := e.sdkDisabled(); err != nil || disabled {
		return cfg, err
	}
	// OTEL_RESOURCE_ATTRIBUTES is the resource's, but a bad one must stop
	// the program at the same point as every other variable.
	if v := e.get("OTEL_RESOURCE_ATTRIBUTES"); v != "" {
		if _, err := parseKeyValues("OTEL_RESOURCE_ATTRIBUTES", v); err != nil {
			return cfg, err
		}
	}

	exporters := e.get("OTEL_METRICS_EXPORTER")
	if exporters == "" {
		exporters = ExporterOTLP
	}
	for _, name := range strings.Split(exporters, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		switch name {
		case ExporterOTLP, ExporterPrometheus, ExporterConsole:
			if !containsString(cfg.Exporters, name) {
				cfg.Exporters = append(cfg.Exporters, name)
			}
		case ExporterNone:
		default:
			return cfg, envError("OTEL_METRICS_EXPORTER", exporters, "want a comma-separated list of otlp, prometheus, console or none")
		}
	}
	if strings.Contains(","+strings.ReplaceAll(exporters, " ", "")+",", ",none,") && len(cfg.Exporters) > 0 {
		return cfg, envError("OTEL_METRICS_EXPORTER", exporters, "none cannot be combined with other exporters")
	}

	var err error
	if cfg.Interval, err = millis(e, "OTEL_METRIC_EXPORT_INTERVAL", defaultExportInterval, false); err != nil {
		return cfg, err
	}
	if cfg.Timeout, err = millis(e, "OTEL_METRIC_EXPORT_TIMEOUT", defaultExportTimeout, true); err != nil {
		return cfg, err
	}
	if cfg.OTLP, err = otlpFromEnv(e); err != nil {
		return cfg, err
	}

	host, port := e.get("OTEL_EXPORTER_PROMETHEUS_HOST"), e.get("OTEL_EXPORTER_PROMETHEUS_PORT")
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = "9464"
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil {
		return cfg, envError("OTEL_EXPORTER_PROMETHEUS_PORT", port, "want a port number 0-65535")
	} else {
		port = strconv.FormatUint(n, 10)
	}
	if strings.ContainsAny(host, "/ ") {
		return cfg, envError("OTEL_EXPORTER_PROMETHEUS_HOST", host, "want a host name or IP address")
	}
	cfg.PrometheusAddr = net.JoinHostPort(strings.Trim(host, "[]"), port)
	return cfg, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// millis parses a duration in integer milliseconds, the specification's
// unit for every *_TIMEOUT and *_INTERVAL variable.
func millis(e env, name string, def time.Duration, zeroOK bool) (time.Duration, error) {
	v := e.get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || (n == 0 && !zeroOK) || n > int64(24*time.Hour/time.Millisecond) {
		return 0, envError(name, v, "want a whole number of milliseconds, e.g. 10000 for 10s")
	}
	return time.Duration(n) * time.Millisecond, nil
}

func otlpFromEnv(e env) (OTLPConfig, error) {
	var c OTLPConfig
	name, v := e.metric("PROTOCOL")
	switch v {
	case "":
		c.Protocol = ProtocolHTTPProtobuf // the specification's default
	case ProtocolGRPC, ProtocolHTTPProtobuf:
		c.Protocol = v
	case "http/json":
		return c, envError(name, v, "http/json is not supported by gopatrol: use grpc or http/protobuf")
	default:
		return c, envError(name, v, "unknown protocol, want grpc or http/protobuf")
	}

	insecureName, insecureValue := e.metric("INSECURE")
	if insecureValue != "" {
		b, err := strconv.ParseBool(insecureValue)
		if err != nil {
			return c, envError(insecureName, insecureValue, "want true or false")
		}
		c.Insecure = b
	}

	var err error
	if c.Endpoint, err = endpointFromEnv(e, c.Protocol, &c.Insecure); err != nil {
		return c, err
	}

	name, v = e.metric("HEADERS")
	if v != "" {
		kv, err := parseKeyValues(name, v)
		if err != nil {
			return c, err
		}
		c.Headers = make(map[string]string, len(kv))
		for _, p := range kv {
			c.Headers[p[0]] = p[1]
		}
	}

	name, _ = e.metric("TIMEOUT")
	if c.Timeout, err = millis(e, name, defaultOTLPTimeout, false); err != nil {
		return c, err
	}

	name, v = e.metric("COMPRESSION")
	switch strings.ToLower(v) {
	case "", "none":
		c.Compression = "none"
	case "gzip":
		c.Compression = "gzip"
	default:
		return c, envError(name, v, "want gzip or none")
	}

	v = strings.ToLower(e.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"))
	switch v {
	case "":
		c.Temporality = TemporalityCumulative
	case TemporalityCumulative, TemporalityDelta, TemporalityLowMemory:
		c.Temporality = v
	default:
		return c, envError("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", v, "want cumulative, delta or lowmemory")
	}

	if c.TLS, err = tlsFromEnv(e); err != nil {
		return c, err
	}
	return c, nil
}

// endpointFromEnv returns the endpoint as a URL. The generic variable is a
// base URL to which /v1/metrics is appended for HTTP; the metric-specific
// one is used as it is (the specification's rule).
func endpointFromEnv(e env, protocol string, insecure *bool) (string, error) {
	name, v := e.metric("ENDPOINT")
	if v == "" {
		if protocol == ProtocolGRPC {
			v = defaultGRPCEndpoint
		} else {
			v = defaultHTTPEndpoint + metricsPath
		}
		*insecure = true
		return v, nil
	}
	shown := withoutPassword(v)
	if !strings.Contains(v, "://") {
		// gRPC clients have long accepted host:port; its security then
		// comes from OTEL_EXPORTER_OTLP_INSECURE.
		if protocol != ProtocolGRPC {
			return "", envError(name, shown, "want a URL such as https://collector:4318")
		}
		host, port, err := net.SplitHostPort(v)
		if err != nil || host == "" || port == "" {
			return "", envError(name, shown, "want a URL such as https://collector:4317, or host:port")
		}
		scheme := "https://"
		if *insecure {
			scheme = "http://"
		}
		// From here on it is a URL like any other: the same checks of its
		// host and port (a "host" such as "#" is no host once in a URL).
		v = scheme + v
	}
	u, err := url.Parse(v)
	if err != nil {
		return "", envError(name, shown, "not a URL: "+urlProblem(err, v))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", envError(name, shown, "want an http:// or https:// URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return "", envError(name, shown, "the URL has no host")
	}
	if p := u.Port(); p != "" {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return "", envError(name, shown, "bad port "+p)
		}
	}
	*insecure = u.Scheme == "http"
	if protocol == ProtocolHTTPProtobuf && name == "OTEL_EXPORTER_OTLP_ENDPOINT" {
		u.Path = strings.TrimSuffix(u.Path, "/") + metricsPath
	}
	return u.String(), nil
}

// urlProblem is url.Parse's complaint without the URL it quotes, which
// can hold a password (it quotes the URL cut at its fragment, so the
// quoted text is not always v). A detail that still shows the password
// is dropped.
func urlProblem(err error, v string) string {
	detail := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		detail = ue.Err.Error()
	}
	if i, j := passwordSpan(v); i < j && strings.Contains(detail, v[i:j]) {
		return "malformed"
	}
	return detail
}

// withoutPassword hides the password of a URL's user:password@, also in
// a value url.Parse rejects, so that an error can show the rest.
func withoutPassword(v string) string {
	i, j := passwordSpan(v)
	if i == j {
		return v
	}
	return v[:i] + "***" + v[j:]
}

// passwordSpan is where the password of v's user:password@ lies, v[i:j];
// i == j when v has none. It reads the authority as url.Parse would, up
// to the first / ? or #, also in a value url.Parse rejects.
func passwordSpan(v string) (i, j int) {
	_, rest, ok := strings.Cut(v, "://")
	if !ok {
		return 0, 0
	}
	start := len(v) - len(rest)
	authority := rest
	if k := strings.IndexAny(rest, "/?#"); k >= 0 {
		authority = rest[:k]
	}
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return 0, 0
	}
	colon := strings.IndexByte(authority[:at], ':')
	if colon < 0 {
		return 0, 0
	}
	return start + colon + 1, start + at
}

// tlsFromEnv loads the CA and client certificate files now, so that a
// missing or unreadable file is reported at start with its variable.
func tlsFromEnv(e env) (*tls.Config, error) {
	caName, caFile := e.metric("CERTIFICATE")
	certName, certFile := e.metric("CLIENT_CERTIFICATE")
	keyName, keyFile := e.metric("CLIENT_KEY")
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: %w", caName, caFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s=%s: no PEM certificate in the file", caName, caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("%s and %s: set both or neither (got %q and %q)", certName, keyName, certFile, keyFile)
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%s=%s, %s=%s: %w", certName, certFile, keyName, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// parseKeyValues parses the W3C-baggage-like list of OTEL_EXPORTER_OTLP_HEADERS
// and OTEL_RESOURCE_ATTRIBUTES: key=value pairs separated by commas,
// values percent-encoded. Errors show the headers redacted: their values
// are credentials (authorization=Bearer ...).
func parseKeyValues(name, v string) ([][2]string, error) {
	show := func(s string) string { return s }
	if strings.HasSuffix(name, "_HEADERS") {
		show = redactValues
	}
	shown := show(v)
	var out [][2]string
	for _, member := range strings.Split(v, ",") {
		member = strings.TrimSpace(member)
		if member == "" {
			continue
		}
		key, value, ok := strings.Cut(member, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, envError(name, shown, fmt.Sprintf("%q is not key=value; want key1=value1,key2=value2 with values percent-encoded", show(member)))
		}
		if i := strings.IndexFunc(key, func(r rune) bool { return !isTokenRune(r) }); i >= 0 {
			return nil, envError(name, shown, fmt.Sprintf("key %q has the character %q", key, key[i]))
		}
		decoded, err := url.PathUnescape(strings.TrimSpace(value))
		if err != nil {
			// The error quotes only the bad escape, at most 3 bytes.
			return nil, envError(name, shown, fmt.Sprintf("value of %s is not percent-encoded: %v", key, err))
		}
		out = append(out, [2]string{key, decoded})
	}
	return out, nil
}

// redactValues replaces the value of every key=value member of a headers
// list with ***, keeping the keys, so that an error can show which
// member is wrong without the tokens of the others.
func redactValues(v string) string {
	members := strings.Split(v, ",")
	for i, m := range members {
		if k, _, ok := strings.Cut(m, "="); ok {
			members[i] = k + "=***"
		}
	}
	return strings.Join(members, ",")
}

// isTokenRune: RFC 7230 token characters, what an HTTP header name and a
// baggage key may hold.
func isTokenRune(r rune) bool {
	if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
		return true
	}
	return strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

// fileConfig reads an OpenTelemetry declarative configuration file. The
// specification says that with it set, the other OTEL_* variables are
// ignored except through ${env:...} substitution in the file.
func fileConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("OTEL_CONFIG_FILE=%s: %w", path, err)
	}
	fc, err := otelconf.ParseYAML(b)
	if err != nil {
		return Config{}, fmt.Errorf("OTEL_CONFIG_FILE=%s: %w", path, err)
	}
	return Config{File: path, FileConfig: fc}, nil
}

// sdkDisabled reads OTEL_SDK_DISABLED, which turns metrics and traces off
// alike.
func (e env) sdkDisabled() (bool, error) {
	v := e.get("OTEL_SDK_DISABLED")
	if v == "" {
		return false, nil
	}
	disabled, err := strconv.ParseBool(v)
	if err != nil {
		return false, envError("OTEL_SDK_DISABLED", v, "want true or false")
	}
	return disabled, nil
}
