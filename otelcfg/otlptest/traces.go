package otlptest

import (
	"context"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TraceRequest is one trace export the receiver got.
type TraceRequest struct {
	Protocol string
	Headers  map[string]string
	Body     *coltracepb.ExportTraceServiceRequest
}

// Span is one received span, flattened for assertions.
type Span struct {
	TraceID, SpanID, ParentID string // hex; ParentID "" for a root
	Name                      string
	Kind                      string // INTERNAL, CLIENT, ...
	Start, End                time.Time
	Attrs                     map[string]string
	Status                    string // UNSET, OK, ERROR
	StatusMessage             string
	Events                    []SpanEvent
	Resource                  map[string]string
	Scope                     string
}

// SpanEvent is one event of a span.
type SpanEvent struct {
	Name  string
	Time  time.Time
	Attrs map[string]string
}

func (r *Receiver) recordTraces(req TraceRequest) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.traces = append(r.traces, req)
	select {
	case r.spansIn <- struct{}{}:
	default:
	}
	return r.reject
}

// Spans flattens every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	reqs := append([]TraceRequest(nil), r.traces...)
	r.mu.Unlock()
	var out []Span
	for _, req := range reqs {
		for _, rs := range req.Body.GetResourceSpans() {
			res := Attrs(rs.GetResource().GetAttributes())
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					s := Span{
						TraceID: hex.EncodeToString(sp.GetTraceId()), SpanID: hex.EncodeToString(sp.GetSpanId()),
						ParentID: hex.EncodeToString(sp.GetParentSpanId()), Name: sp.GetName(),
						Kind:  strings.TrimPrefix(sp.GetKind().String(), "SPAN_KIND_"),
						Start: time.Unix(0, int64(sp.GetStartTimeUnixNano())), End: time.Unix(0, int64(sp.GetEndTimeUnixNano())),
						Attrs: Attrs(sp.GetAttributes()), Status: strings.TrimPrefix(sp.GetStatus().GetCode().String(), "STATUS_CODE_"),
						StatusMessage: sp.GetStatus().GetMessage(), Resource: res, Scope: ss.GetScope().GetName(),
					}
					for _, e := range sp.GetEvents() {
						s.Events = append(s.Events, SpanEvent{Name: e.GetName(), Time: time.Unix(0, int64(e.GetTimeUnixNano())), Attrs: Attrs(e.GetAttributes())})
					}
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// WaitSpans returns the spans received once done says they are complete,
// or fails the test after timeout.
func (r *Receiver) WaitSpans(t testing.TB, timeout time.Duration, done func([]Span) bool) []Span {
	t.Helper()
	deadline := time.After(timeout)
	for {
		spans := r.Spans()
		if done(spans) {
			return spans
		}
		select {
		case <-r.spansIn:
		case <-deadline:
			t.Fatalf("receiver: %d spans after %v, not what the test waits for", len(spans), timeout)
		}
	}
}

type traceService struct {
	coltracepb.UnimplementedTraceServiceServer
	r *Receiver
}

func (s traceService) Export(ctx context.Context, body *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	headers := map[string]string{}
	md, _ := metadata.FromIncomingContext(ctx)
	for k, v := range md {
		headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	if reject := s.r.recordTraces(TraceRequest{Protocol: "grpc", Headers: headers, Body: body}); reject != "" {
		return nil, status.Error(codes.InvalidArgument, reject)
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (r *Receiver) serveTracesHTTP(w http.ResponseWriter, req *http.Request) {
	msg := &coltracepb.ExportTraceServiceRequest{}
	headers, _, ok := readHTTP(w, req, msg)
	if !ok {
		return
	}
	if reject := r.recordTraces(TraceRequest{Protocol: "http", Headers: headers, Body: msg}); reject != "" {
		http.Error(w, reject, http.StatusBadRequest)
		return
	}
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}
