package otelcfg

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/credentials"
)

const tracesPath = "/v1/traces"

// TracesConfig is what the OTEL_* variables say about traces.
type TracesConfig struct {
	// Exporters are from OTEL_TRACES_EXPORTER: otlp (the default) and/or
	// console; none (or OTEL_SDK_DISABLED=true) leaves it empty.
	Exporters []string
	// OTLP is read from the OTEL_EXPORTER_OTLP_TRACES_* variables, each
	// falling back to its OTEL_EXPORTER_OTLP_* one.
	OTLP OTLPConfig
}

// TracesFromEnv reads and validates the OTEL_* variables that concern
// traces; lookup is os.LookupEnv or MapLookup(...). Each error names the
// variable. OTEL_CONFIG_FILE is not read for traces.
func TracesFromEnv(lookup func(string) (string, bool)) (TracesConfig, error) {
	e := env{lookup}
	var cfg TracesConfig
	if disabled, err := e.sdkDisabled(); err != nil || disabled {
		return cfg, err
	}
	exporters := e.get("OTEL_TRACES_EXPORTER")
	if exporters == "" {
		exporters = ExporterOTLP
	}
	none := false
	for _, name := range strings.Split(exporters, ",") {
		switch name = strings.ToLower(strings.TrimSpace(name)); name {
		case ExporterOTLP, ExporterConsole:
			if !containsString(cfg.Exporters, name) {
				cfg.Exporters = append(cfg.Exporters, name)
			}
		case ExporterNone:
			none = true
		default:
			return cfg, envError("OTEL_TRACES_EXPORTER", exporters, "want a comma-separated list of otlp, console or none")
		}
	}
	if none && len(cfg.Exporters) > 0 {
		return cfg, envError("OTEL_TRACES_EXPORTER", exporters, "none cannot be combined with other exporters")
	}
	// The OTLP variables are the metrics' with TRACES for METRICS: read
	// them through a lookup that renames, so that both signals validate
	// the same way.
	traces := func(name string) (string, bool) {
		if rest, ok := strings.CutPrefix(name, "OTEL_EXPORTER_OTLP_METRICS_"); ok {
			return lookup("OTEL_EXPORTER_OTLP_TRACES_" + rest)
		}
		return lookup(name)
	}
	var err error
	if cfg.OTLP, err = otlpFromEnv(env{traces}); err != nil {
		// The error names the METRICS variable it read through the rename.
		return cfg, fmt.Errorf("%s", strings.ReplaceAll(err.Error(), "OTEL_EXPORTER_OTLP_METRICS_", "OTEL_EXPORTER_OTLP_TRACES_"))
	}
	if cfg.OTLP.Protocol == ProtocolHTTPProtobuf && e.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		// A base (or default) endpoint got /v1/metrics appended.
		cfg.OTLP.Endpoint = strings.TrimSuffix(cfg.OTLP.Endpoint, metricsPath) + tracesPath
	}
	return cfg, nil
}

// TracerProvider is a configured tracer provider with its exporters.
type TracerProvider struct {
	tp       trace.TracerProvider
	sdk      *sdktrace.TracerProvider
	endpoint string
	version  string
}

// maxQueuedSpans is the batch processor's queue: a go build -a std is a
// few hundred spans at once.
const maxQueuedSpans = 16384

// NewTracerProvider builds the tracer provider of cfg, with res on every
// span. Every span started is recorded (the caller samples whole traces
// before it starts them); spans are sent in batches.
func NewTracerProvider(ctx context.Context, cfg TracesConfig, res *resource.Resource, opts Options) (*TracerProvider, error) {
	p := &TracerProvider{version: opts.Version}
	if len(cfg.Exporters) == 0 {
		p.tp = noop.NewTracerProvider()
		p.endpoint = "nowhere (no trace exporter)"
		return p, nil
	}
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSampler(sdktrace.AlwaysSample())}
	var endpoints []string
	for _, name := range cfg.Exporters {
		var exp sdktrace.SpanExporter
		var err error
		switch name {
		case ExporterOTLP:
			exp, err = newOTLPTraces(ctx, cfg.OTLP)
			endpoints = append(endpoints, cfg.OTLP.Endpoint)
		case ExporterConsole:
			w := io.Writer(os.Stdout)
			if opts.Console != nil {
				w = opts.Console
			}
			exp, err = stdouttrace.New(stdouttrace.WithWriter(w))
			endpoints = append(endpoints, "console")
		default:
			err = fmt.Errorf("trace exporter %q: want otlp or console", name)
		}
		if err != nil {
			return nil, err
		}
		if opts.SpanProcessor != nil {
			tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(opts.SpanProcessor(exp)))
			continue
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp, sdktrace.WithMaxQueueSize(maxQueuedSpans), sdktrace.WithMaxExportBatchSize(1024)))
	}
	p.sdk = sdktrace.NewTracerProvider(tpOpts...)
	p.tp = p.sdk
	p.endpoint = strings.Join(endpoints, ", ")
	return p, nil
}

// Tracer is the tracer of gopatrol's scope.
func (p *TracerProvider) Tracer() trace.Tracer {
	return p.tp.Tracer(ScopeName, trace.WithInstrumentationVersion(p.version))
}

// Endpoint says where spans go.
func (p *TracerProvider) Endpoint() string { return p.endpoint }

// ForceFlush sends the spans ended so far.
func (p *TracerProvider) ForceFlush(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	if err := p.sdk.ForceFlush(ctx); err != nil {
		return &ExportError{Endpoint: p.endpoint, Err: err}
	}
	return nil
}

// Shutdown flushes and stops the exporters.
func (p *TracerProvider) Shutdown(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	if err := p.sdk.Shutdown(ctx); err != nil {
		return &ExportError{Endpoint: p.endpoint, Err: err}
	}
	return nil
}

func newOTLPTraces(ctx context.Context, c OTLPConfig) (sdktrace.SpanExporter, error) {
	st, err := c.setup("OTLP traces")
	if err != nil {
		return nil, err
	}
	u, timeout, tlsCfg, retryInitial, retryMax := st.u, st.timeout, st.tls, st.retryInitial, st.retryMax
	switch c.Protocol {
	case ProtocolGRPC:
		opts := []otlptracegrpc.Option{
			otlptracegrpc.WithEndpoint(u.Host),
			otlptracegrpc.WithTimeout(timeout),
			otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: retryInitial, MaxInterval: retryMax, MaxElapsedTime: timeout}),
		}
		if c.Insecure || u.Scheme == "http" {
			opts = append(opts, otlptracegrpc.WithInsecure())
		} else {
			opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		}
		if len(c.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(c.Headers))
		}
		if c.Compression == "gzip" {
			opts = append(opts, otlptracegrpc.WithCompressor("gzip"))
		}
		exp, err := otlptracegrpc.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("OTLP/gRPC trace exporter for %s: %w", c.Endpoint, err)
		}
		return exp, nil
	case ProtocolHTTPProtobuf, "":
		opts := []otlptracehttp.Option{
			otlptracehttp.WithEndpointURL(c.Endpoint),
			otlptracehttp.WithTimeout(timeout),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: true, InitialInterval: retryInitial, MaxInterval: retryMax, MaxElapsedTime: timeout}),
		}
		if u.Scheme == "https" {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(tlsCfg))
		}
		if len(c.Headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(c.Headers))
		}
		if c.Compression == "gzip" {
			opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		} else {
			opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.NoCompression))
		}
		exp, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("OTLP/HTTP trace exporter for %s: %w", c.Endpoint, err)
		}
		return exp, nil
	}
	return nil, fmt.Errorf("OTLP protocol %q: want grpc or http/protobuf", c.Protocol)
}
