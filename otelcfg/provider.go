package otelcfg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/otelconf"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// ScopeName is the instrumentation scope of every gopatrol instrument.
const ScopeName = "github.com/gopatrol/gopatrol"

// ExportError is an export that did not arrive: where it was going and why.
type ExportError struct {
	Endpoint string
	Err      error
}

func (e *ExportError) Error() string {
	// The SDK joins errors with newlines; a one-line message reads better
	// on a terminal and in a log.
	cause := strings.Join(strings.Fields(e.Err.Error()), " ")
	return fmt.Sprintf("export to %s: %s", e.Endpoint, cause)
}
func (e *ExportError) Unwrap() error { return e.Err }

// Provider is a configured MeterProvider with its exporters.
type Provider struct {
	mp        metric.MeterProvider
	flush     func(context.Context) error
	shutdowns []func(context.Context) error
	endpoint  string
	timeout   time.Duration
	version   string
	promAddr  string
	// promHandler serves the Prometheus exporter's registry, also on the
	// agent's own listener.
	promHandler http.Handler
	log         *slog.Logger

	mu      sync.Mutex
	handled []error // errors the SDK reported through otel.Handle
}

// Options are what New needs besides Config.
type Options struct {
	// Console receives the console exporter's output (default stdout).
	Console io.Writer
	// Version is the instrumentation scope's version.
	Version string
	Logger  *slog.Logger
	// MeterOptions are added to the MeterProvider's own (the agent's
	// cardinality limit, views).
	MeterOptions []sdkmetric.Option
	// SpanProcessor, when set, sends each trace exporter's spans instead
	// of the SDK's batch span processor (OTEL_BSP_*).
	SpanProcessor func(sdktrace.SpanExporter) sdktrace.SpanProcessor
}

// New builds the MeterProvider of cfg, with res on every metric. Nothing is
// sent until a reader's interval, ForceFlush or Shutdown.
func New(ctx context.Context, cfg Config, res *resource.Resource, opts Options) (*Provider, error) {
	p := &Provider{version: opts.Version, log: opts.Logger, timeout: cfg.OTLP.Timeout}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.timeout == 0 {
		p.timeout = defaultOTLPTimeout
	}
	if cfg.FileConfig != nil {
		if err := p.fromFile(ctx, cfg, res); err != nil {
			return nil, err
		}
		p.register()
		return p, nil
	}
	if len(cfg.Exporters) == 0 {
		p.mp = noop.NewMeterProvider()
		p.endpoint = "nowhere (no exporter)"
		return p, nil
	}
	interval, timeout := cfg.Interval, cfg.Timeout
	if interval == 0 {
		interval = defaultExportInterval
	}
	if timeout == 0 {
		timeout = defaultExportTimeout
	}
	mpOpts := append([]sdkmetric.Option{sdkmetric.WithResource(res)}, opts.MeterOptions...)
	var endpoints []string
	for _, name := range cfg.Exporters {
		switch name {
		case ExporterOTLP:
			exp, err := newOTLP(ctx, cfg.OTLP)
			if err != nil {
				p.shutdown(ctx)
				return nil, err
			}
			mpOpts = append(mpOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp,
				sdkmetric.WithInterval(interval), sdkmetric.WithTimeout(timeout))))
			endpoints = append(endpoints, cfg.OTLP.Endpoint)
		case ExporterConsole:
			w := opts.Console
			if w == nil {
				w = os.Stdout
			}
			exp, err := stdoutmetric.New(stdoutmetric.WithWriter(w), stdoutmetric.WithPrettyPrint())
			if err != nil {
				return nil, fmt.Errorf("console exporter: %w", err)
			}
			mpOpts = append(mpOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp,
				sdkmetric.WithInterval(interval), sdkmetric.WithTimeout(timeout))))
			endpoints = append(endpoints, "console")
		case ExporterPrometheus:
			reader, err := p.servePrometheus(cfg.PrometheusAddr)
			if err != nil {
				p.shutdown(ctx)
				return nil, err
			}
			mpOpts = append(mpOpts, sdkmetric.WithReader(reader))
			endpoints = append(endpoints, "prometheus http://"+p.promAddr+"/metrics")
		default:
			return nil, fmt.Errorf("metric exporter %q: want otlp, prometheus or console", name)
		}
	}
	mp := sdkmetric.NewMeterProvider(mpOpts...)
	p.mp = mp
	p.flush = mp.ForceFlush
	p.shutdowns = append([]func(context.Context) error{mp.Shutdown}, p.shutdowns...)
	p.endpoint = strings.Join(endpoints, ", ")
	p.register()
	return p, nil
}

// PrometheusHandler serves /metrics of the Prometheus exporter; nil when it
// is off.
func (p *Provider) PrometheusHandler() http.Handler { return p.promHandler }

// MeterProvider is the provider itself, for code that takes the interface.
func (p *Provider) MeterProvider() metric.MeterProvider { return p.mp }

// Meter is gopatrol's meter, with the semantic conventions' schema URL.
func (p *Provider) Meter() metric.Meter {
	return p.mp.Meter(ScopeName, metric.WithInstrumentationVersion(p.version), metric.WithSchemaURL(SchemaURL))
}

// Endpoint names where the metrics go, for messages.
func (p *Provider) Endpoint() string { return p.endpoint }

// Timeout is the OTLP export timeout: the deadline a caller gives one
// flush.
func (p *Provider) Timeout() time.Duration { return p.timeout }

// PrometheusAddr is the pull endpoint's listen address, once listening.
func (p *Provider) PrometheusAddr() string { return p.promAddr }

// ForceFlush exports what was recorded now. A failed or partial export is
// an *ExportError.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p.flush == nil {
		return nil
	}
	mark := p.mark()
	err := p.flush(ctx)
	return p.exportErr(err, mark)
}

// Shutdown exports what is left, then stops every exporter and the
// Prometheus listener. Call it once.
func (p *Provider) Shutdown(ctx context.Context) error {
	mark := p.mark()
	err := p.shutdown(ctx)
	p.unregister()
	return p.exportErr(err, mark)
}

func (p *Provider) shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range p.shutdowns {
		if err := f(ctx); err != nil && !errors.Is(err, sdkmetric.ErrReaderShutdown) {
			errs = append(errs, err)
		}
	}
	p.shutdowns = nil
	return errors.Join(errs...)
}

func (p *Provider) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.handled)
}

// exportErr adds to err what the SDK reported through otel.Handle since
// mark (a partial success, a reader that gave up) and names the endpoint.
func (p *Provider) exportErr(err error, mark int) error {
	p.mu.Lock()
	errs := append([]error{err}, p.handled[mark:]...)
	p.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return &ExportError{Endpoint: p.endpoint, Err: err}
	}
	return nil
}

// The SDK reports asynchronous failures (a periodic export that failed, a
// partial success) through one global handler; it is shared out to every
// live Provider.
var (
	handlerOnce sync.Once
	liveMu      sync.Mutex
	live        = map[*Provider]struct{}{}
)

type dispatcher struct{}

func (dispatcher) Handle(err error) {
	liveMu.Lock()
	defer liveMu.Unlock()
	if len(live) == 0 {
		slog.Warn("opentelemetry", "err", err)
	}
	for p := range live {
		p.mu.Lock()
		p.handled = append(p.handled, err)
		if len(p.handled) > 1000 { // a long-running agent must not grow without bound
			p.handled = append(p.handled[:0], p.handled[len(p.handled)-100:]...)
		}
		p.mu.Unlock()
		p.log.Warn("metric export", "endpoint", p.endpoint, "err", err)
	}
}

func (p *Provider) register() {
	handlerOnce.Do(func() { otel.SetErrorHandler(dispatcher{}) })
	liveMu.Lock()
	live[p] = struct{}{}
	liveMu.Unlock()
}

func (p *Provider) unregister() {
	liveMu.Lock()
	delete(live, p)
	liveMu.Unlock()
}

// temporality implements OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE
// as the specification defines its three values.
func temporality(pref string) sdkmetric.TemporalitySelector {
	switch pref {
	case TemporalityDelta:
		return func(k sdkmetric.InstrumentKind) metricdata.Temporality {
			switch k {
			case sdkmetric.InstrumentKindCounter, sdkmetric.InstrumentKindHistogram, sdkmetric.InstrumentKindObservableCounter:
				return metricdata.DeltaTemporality
			}
			return metricdata.CumulativeTemporality
		}
	case TemporalityLowMemory:
		return func(k sdkmetric.InstrumentKind) metricdata.Temporality {
			switch k {
			case sdkmetric.InstrumentKindCounter, sdkmetric.InstrumentKindHistogram:
				return metricdata.DeltaTemporality
			}
			return metricdata.CumulativeTemporality
		}
	}
	return sdkmetric.DefaultTemporalitySelector
}

// newOTLP builds the OTLP exporter. Retries are bounded by the timeout: the
// gRPC exporter's default would keep retrying an unreachable collector for a
// minute, far past what a user asked for.
func newOTLP(ctx context.Context, c OTLPConfig) (sdkmetric.Exporter, error) {
	st, err := c.setup("OTLP")
	if err != nil {
		return nil, err
	}
	u, timeout, tlsCfg, retryInitial, retryMax := st.u, st.timeout, st.tls, st.retryInitial, st.retryMax
	switch c.Protocol {
	case ProtocolGRPC:
		opts := []otlpmetricgrpc.Option{
			otlpmetricgrpc.WithEndpoint(u.Host),
			otlpmetricgrpc.WithTimeout(timeout),
			otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: true, InitialInterval: retryInitial, MaxInterval: retryMax, MaxElapsedTime: timeout}),
			otlpmetricgrpc.WithTemporalitySelector(temporality(c.Temporality)),
		}
		if c.Insecure || u.Scheme == "http" {
			opts = append(opts, otlpmetricgrpc.WithInsecure())
		} else {
			opts = append(opts, otlpmetricgrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		}
		if len(c.Headers) > 0 {
			opts = append(opts, otlpmetricgrpc.WithHeaders(c.Headers))
		}
		if c.Compression == "gzip" {
			opts = append(opts, otlpmetricgrpc.WithCompressor("gzip"))
		}
		last := &lastError{}
		opts = append(opts, otlpmetricgrpc.WithDialOption(grpc.WithChainUnaryInterceptor(last.intercept)))
		exp, err := otlpmetricgrpc.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("OTLP/gRPC exporter for %s: %w", c.Endpoint, err)
		}
		return causeExporter{exp, last}, nil
	case ProtocolHTTPProtobuf, "":
		opts := []otlpmetrichttp.Option{
			otlpmetrichttp.WithEndpointURL(c.Endpoint),
			otlpmetrichttp.WithTimeout(timeout),
			otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: true, InitialInterval: retryInitial, MaxInterval: retryMax, MaxElapsedTime: timeout}),
			otlpmetrichttp.WithTemporalitySelector(temporality(c.Temporality)),
		}
		if u.Scheme == "https" {
			opts = append(opts, otlpmetrichttp.WithTLSClientConfig(tlsCfg))
		}
		if len(c.Headers) > 0 {
			opts = append(opts, otlpmetrichttp.WithHeaders(c.Headers))
		}
		if c.Compression == "gzip" {
			opts = append(opts, otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression))
		} else {
			opts = append(opts, otlpmetrichttp.WithCompression(otlpmetrichttp.NoCompression))
		}
		exp, err := otlpmetrichttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("OTLP/HTTP exporter for %s: %w", c.Endpoint, err)
		}
		return exp, nil
	}
	return nil, fmt.Errorf("OTLP protocol %q: want grpc or http/protobuf", c.Protocol)
}

// lastError remembers the last failed attempt of a gRPC export. When the
// retries run out of time, the exporter reports only "deadline exceeded";
// the attempt before says why (connection refused, a certificate signed by
// an unknown authority), and that is what a user needs to read.
type lastError struct {
	mu  sync.Mutex
	err error
}

func (l *lastError) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if err != nil && status.Code(err) != codes.DeadlineExceeded && status.Code(err) != codes.Canceled {
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
	}
	return err
}

func (l *lastError) take() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.err
	l.err = nil
	return err
}

// causeExporter adds the last attempt's error to a timed-out export.
type causeExporter struct {
	sdkmetric.Exporter
	last *lastError
}

func (e causeExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	e.last.take()
	err := e.Exporter.Export(ctx, rm)
	if last := e.last.take(); err != nil && last != nil && !strings.Contains(err.Error(), last.Error()) {
		err = fmt.Errorf("%w (last attempt: %v)", err, last)
	}
	return err
}

// servePrometheus starts the pull endpoint on its own registry, so that
// nothing else registered in the process leaks into gopatrol's page.
func (p *Provider) servePrometheus(addr string) (sdkmetric.Reader, error) {
	reg := prometheus.NewRegistry()
	reader, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("prometheus endpoint: listen on %s (OTEL_EXPORTER_PROMETHEUS_HOST/PORT): %w", addr, err)
	}
	p.promAddr = ln.Addr().String()
	mux := http.NewServeMux()
	p.promHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{p.log}})
	mux.Handle("/metrics", p.promHandler)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("prometheus endpoint stopped", "addr", p.promAddr, "err", err)
		}
	}()
	p.shutdowns = append(p.shutdowns, srv.Shutdown)
	return reader, nil
}

type slogPrinter struct{ log *slog.Logger }

func (s slogPrinter) Println(v ...any) { s.log.Error("prometheus endpoint", "err", fmt.Sprint(v...)) }

// fromFile builds the providers of a declarative configuration file, with
// gopatrol's resource under the file's own attributes (the file wins a
// conflict: a user wrote it).
func (p *Provider) fromFile(ctx context.Context, cfg Config, res *resource.Resource) error {
	// otelconf.NewSDK re-reads OTEL_CONFIG_FILE from the process
	// environment and lets it supersede the configuration passed in, which
	// would drop gopatrol's resource without a word.
	if v, ok := os.LookupEnv("OTEL_CONFIG_FILE"); ok {
		return fmt.Errorf("OTEL_CONFIG_FILE=%s is still set in the process environment: unset it after FromEnv (otelconf would re-read it and drop gopatrol's resource)", v)
	}
	fc := *cfg.FileConfig
	r := otelconf.Resource{}
	if fc.Resource != nil {
		r = *fc.Resource
	}
	var attrs []otelconf.AttributeNameValue
	for _, kv := range res.Attributes() {
		attrs = append(attrs, otelconf.AttributeNameValue{Name: string(kv.Key), Value: kv.Value.Emit()})
	}
	r.Attributes = append(attrs, r.Attributes...)
	if r.SchemaUrl == nil {
		s := res.SchemaURL()
		r.SchemaUrl = &s
	}
	fc.Resource = &r
	sdk, err := otelconf.NewSDK(otelconf.WithContext(ctx), otelconf.WithOpenTelemetryConfiguration(fc))
	if err != nil {
		return fmt.Errorf("OTEL_CONFIG_FILE=%s: %w", cfg.File, err)
	}
	p.mp = sdk.MeterProvider()
	if f, ok := p.mp.(interface{ ForceFlush(context.Context) error }); ok {
		p.flush = f.ForceFlush
	}
	p.shutdowns = []func(context.Context) error{sdk.Shutdown}
	p.endpoint = fileEndpoint(fc, cfg.File)
	return nil
}

// fileEndpoint names the first push exporter's endpoint of a configuration
// file, for messages.
func fileEndpoint(fc otelconf.OpenTelemetryConfiguration, path string) string {
	if fc.MeterProvider != nil {
		for _, r := range fc.MeterProvider.Readers {
			if r.Periodic == nil {
				continue
			}
			if e := r.Periodic.Exporter.OTLPGrpc; e != nil && e.Endpoint != nil {
				return *e.Endpoint
			}
			if e := r.Periodic.Exporter.OTLPHttp; e != nil && e.Endpoint != nil {
				return *e.Endpoint
			}
		}
	}
	return "the exporters of " + path
}
