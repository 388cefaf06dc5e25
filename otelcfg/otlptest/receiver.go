package otlptest

import (
	"compress/gzip"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // a receiver must accept what the exporter compresses
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Request is one export the receiver got.
type Request struct {
	Protocol string // "grpc" or "http"
	// Headers are the gRPC metadata or HTTP headers, keys lower-cased.
	Headers map[string]string
	Gzip    bool
	Body    *colmetricpb.ExportMetricsServiceRequest
}

// Options shape the receiver.
type Options struct {
	// TLS serves both protocols over TLS (with ClientAuth for mTLS).
	TLS *tls.Config
	// Discard counts exports without keeping them (benchmarks).
	Discard bool
}

// Receiver is a running receiver. Its answers can be changed between
// exports with Reject and PartialSuccess.
type Receiver struct {
	// GRPCEndpoint is a URL for the gRPC exporter: http:// or https://
	// 127.0.0.1:port.
	GRPCEndpoint string
	// HTTPEndpoint is the full URL of /v1/metrics.
	HTTPEndpoint string
	// HTTPTracesEndpoint is the full URL of /v1/traces (GRPCEndpoint
	// serves traces too).
	HTTPTracesEndpoint string

	discard  bool
	mu       sync.Mutex
	count    int
	requests []Request
	partial  *colmetricpb.ExportMetricsPartialSuccess
	reject   string
	arrived  chan struct{}
	traces   []TraceRequest
	spansIn  chan struct{}
}

// Start runs a receiver until the test ends.
func Start(t testing.TB, opts Options) *Receiver {
	t.Helper()
	r := &Receiver{arrived: make(chan struct{}, 1024), spansIn: make(chan struct{}, 1), discard: opts.Discard}
	scheme := "http"
	if opts.TLS != nil {
		scheme = "https"
	}

	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var sopts []grpc.ServerOption
	if opts.TLS != nil {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	sopts = append(sopts, grpc.StatsHandler(compressionTagger{}))
	gs := grpc.NewServer(sopts...)
	colmetricpb.RegisterMetricsServiceServer(gs, grpcService{r: r})
	coltracepb.RegisterTraceServiceServer(gs, traceService{r: r})
	go gs.Serve(gln)
	r.GRPCEndpoint = fmt.Sprintf("%s://%s", scheme, gln.Addr())

	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/metrics", r.serveHTTP)
	mux.HandleFunc("POST /v1/traces", r.serveTracesHTTP)
	// Refused handshakes are what some tests are about: not noise for the log.
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	if opts.TLS != nil {
		hs.TLSConfig = opts.TLS
		go hs.ServeTLS(hln, "", "")
	} else {
		go hs.Serve(hln)
	}
	r.HTTPEndpoint = fmt.Sprintf("%s://%s/v1/metrics", scheme, hln.Addr())
	r.HTTPTracesEndpoint = fmt.Sprintf("%s://%s/v1/traces", scheme, hln.Addr())

	t.Cleanup(func() {
		gs.Stop()
		hs.Close()
	})
	return r
}

// PartialSuccess makes every later export answer a partial success.
func (r *Receiver) PartialSuccess(rejected int64, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.partial = &colmetricpb.ExportMetricsPartialSuccess{RejectedDataPoints: rejected, ErrorMessage: message}
}

// Reject makes every later export fail with a non-retryable error
// (gRPC InvalidArgument, HTTP 400) carrying message.
func (r *Receiver) Reject(message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reject = message
}

// Requests returns the exports received so far.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// Count is the number of exports received, kept or not.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// Wait returns once n exports in all have arrived, or fails the test.
func (r *Receiver) Wait(t testing.TB, n int, timeout time.Duration) []Request {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if reqs := r.Requests(); len(reqs) >= n {
			return reqs
		}
		select {
		case <-r.arrived:
		case <-deadline:
			t.Fatalf("receiver: %d exports after %v, want %d", len(r.Requests()), timeout, n)
		}
	}
}

// record stores a request and returns the answer to give.
func (r *Receiver) record(req Request) (*colmetricpb.ExportMetricsServiceResponse, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count++
	if !r.discard {
		r.requests = append(r.requests, req)
	}
	select {
	case r.arrived <- struct{}{}:
	default:
	}
	return &colmetricpb.ExportMetricsServiceResponse{PartialSuccess: r.partial}, r.reject
}

type grpcService struct {
	colmetricpb.UnimplementedMetricsServiceServer
	r *Receiver
}

func (s grpcService) Export(ctx context.Context, body *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	headers := map[string]string{}
	md, _ := metadata.FromIncomingContext(ctx)
	for k, v := range md {
		headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	gz := false
	if c, ok := ctx.Value(compressionKey{}).(*string); ok {
		gz = *c == "gzip"
	}
	resp, reject := s.r.record(Request{Protocol: "grpc", Headers: headers, Gzip: gz, Body: body})
	if reject != "" {
		return nil, status.Error(codes.InvalidArgument, reject)
	}
	return resp, nil
}

// compressionTagger learns each RPC's compression from its headers: gRPC
// keeps grpc-encoding out of the metadata a handler sees.
type compressionTagger struct{}

type compressionKey struct{}

func (compressionTagger) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, compressionKey{}, new(string))
}

func (compressionTagger) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok {
		if c, ok := ctx.Value(compressionKey{}).(*string); ok {
			*c = h.Compression
		}
	}
}

func (compressionTagger) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (compressionTagger) HandleConn(context.Context, stats.ConnStats) {}

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	msg := &colmetricpb.ExportMetricsServiceRequest{}
	headers, gz, ok := readHTTP(w, req, msg)
	if !ok {
		return
	}
	resp, reject := r.record(Request{Protocol: "http", Headers: headers, Gzip: gz, Body: msg})
	if reject != "" {
		http.Error(w, reject, http.StatusBadRequest)
		return
	}
	out, _ := proto.Marshal(resp)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// readHTTP decodes an OTLP/HTTP protobuf body (gzip'd or not) into msg and
// returns the request's headers, lower-cased; on a bad request it has
// answered it and returns false.
func readHTTP(w http.ResponseWriter, req *http.Request, msg proto.Message) (map[string]string, bool, bool) {
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "want Content-Type application/x-protobuf, got "+ct, http.StatusUnsupportedMediaType)
		return nil, false, false
	}
	var body io.Reader = req.Body
	gz := req.Header.Get("Content-Encoding") == "gzip"
	if gz {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, "bad gzip body: "+err.Error(), http.StatusBadRequest)
			return nil, false, false
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, false, false
	}
	if err := proto.Unmarshal(b, msg); err != nil {
		http.Error(w, "bad protobuf body: "+err.Error(), http.StatusBadRequest)
		return nil, false, false
	}
	headers := map[string]string{}
	for k, v := range req.Header {
		headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	return headers, gz, true
}

// Point is one data point, flattened for assertions.
type Point struct {
	Metric, Unit, Description string
	Kind                      string // gauge, sum, histogram
	Attrs                     map[string]string
	Value                     float64 // gauge/sum value, histogram sum
	Count                     uint64  // histogram count
	Temporality               string  // sums and histograms: CUMULATIVE or DELTA
	Monotonic                 bool
	Scope                     string
	SchemaURL                 string // the scope's
}

// Points flattens every data point of the requests.
func Points(reqs []Request) []Point {
	var out []Point
	for _, req := range reqs {
		for _, rm := range req.Body.GetResourceMetrics() {
			for _, sm := range rm.GetScopeMetrics() {
				for _, m := range sm.GetMetrics() {
					base := Point{Metric: m.GetName(), Unit: m.GetUnit(), Description: m.GetDescription(),
						Scope: sm.GetScope().GetName(), SchemaURL: sm.GetSchemaUrl()}
					out = append(out, flatten(base, m)...)
				}
			}
		}
	}
	return out
}

func flatten(base Point, m *metricpb.Metric) []Point {
	var out []Point
	switch d := m.GetData().(type) {
	case *metricpb.Metric_Gauge:
		for _, dp := range d.Gauge.GetDataPoints() {
			p := base
			p.Kind, p.Attrs, p.Value = "gauge", Attrs(dp.GetAttributes()), number(dp)
			out = append(out, p)
		}
	case *metricpb.Metric_Sum:
		for _, dp := range d.Sum.GetDataPoints() {
			p := base
			p.Kind, p.Attrs, p.Value = "sum", Attrs(dp.GetAttributes()), number(dp)
			p.Temporality = strings.TrimPrefix(d.Sum.GetAggregationTemporality().String(), "AGGREGATION_TEMPORALITY_")
			p.Monotonic = d.Sum.GetIsMonotonic()
			out = append(out, p)
		}
	case *metricpb.Metric_Histogram:
		for _, dp := range d.Histogram.GetDataPoints() {
			p := base
			p.Kind, p.Attrs, p.Value, p.Count = "histogram", Attrs(dp.GetAttributes()), dp.GetSum(), dp.GetCount()
			p.Temporality = strings.TrimPrefix(d.Histogram.GetAggregationTemporality().String(), "AGGREGATION_TEMPORALITY_")
			out = append(out, p)
		}
	}
	return out
}

func number(dp *metricpb.NumberDataPoint) float64 {
	if v, ok := dp.GetValue().(*metricpb.NumberDataPoint_AsInt); ok {
		return float64(v.AsInt)
	}
	return dp.GetAsDouble()
}

// Resource returns the attributes of the first resource of the requests
// and its schema URL.
func Resource(reqs []Request) (map[string]string, string) {
	for _, req := range reqs {
		for _, rm := range req.Body.GetResourceMetrics() {
			return Attrs(rm.GetResource().GetAttributes()), rm.GetSchemaUrl()
		}
	}
	return nil, ""
}

// Attrs renders attributes as strings.
func Attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(x.IntValue)
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = fmt.Sprint(x.BoolValue)
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = fmt.Sprint(x.DoubleValue)
		default:
			m[kv.GetKey()] = v.String()
		}
	}
	return m
}
