package query

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/internal/servertest"
)

// TestPromQLRealPrometheus: a real Prometheus scrapes a /metrics endpoint
// this test serves on loopback; the source reads the scraped value back,
// follows a change, and names the errors of empty, plural and bad queries.
func TestPromQLRealPrometheus(t *testing.T) {
	var value atomic.Int64
	value.Store(42)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	exporter := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE gopatrol_test_queue_depth gauge\ngopatrol_test_queue_depth{queue=\"builds\"} %d\n", value.Load())
	})}}
	exporter.Start()
	t.Cleanup(exporter.Close)
	prom := servertest.Prometheus(t, ln.Addr().String())

	src := func(q string) *PromQL {
		p, err := NewPromQL(PromQLConfig{URL: prom.URL, Query: q, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	waitValue := func(q string, want float64) {
		t.Helper()
		p := src(q)
		var got float64
		var err error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if got, err = p.Query(context.Background()); err == nil && got == want {
				return
			}
		}
		t.Fatalf("%s = %v, %v; want %v after Prometheus scraped it\n%s", q, got, err, want, prom.Log())
	}
	waitValue(`gopatrol_test_queue_depth{queue="builds"}`, 42)
	value.Store(7)
	waitValue(`max(gopatrol_test_queue_depth)`, 7)
	waitValue(`scalar(up) * 2`, 2)

	reg, err := NewRegistry(Servers{Prometheus: map[string]PrometheusServer{"fleet": {URL: prom.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"fleet", ""} {
		p, err := reg.PromQL(target, "max(gopatrol_test_queue_depth)", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := p.Query(context.Background()); err != nil || v != 7 {
			t.Errorf("registry target %q: %v, %v; want 7", target, v, err)
		}
	}

	for _, tt := range []struct {
		query string
		want  error
	}{
		{`gopatrol_no_such_metric`, ErrNoData},
		{`{__name__=~"up|gopatrol_test_queue_depth"}`, ErrManyValues},
		{`sum(`, ErrBadQuery},
		{`gopatrol_test_queue_depth[1m]`, ErrNotNumber}, // a matrix: no one number
	} {
		_, err := src(tt.query).Query(context.Background())
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.query, err, tt.want)
		}
	}
}

// TestPromQLAnswers feeds the source the answers a Prometheus API can
// give, and the garbage a wrong endpoint gives.
func TestPromQLAnswers(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   float64
		err    error
	}{
		{"scalar", 200, `{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"3.5"]}}`, 3.5, nil},
		{"one sample", 200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1700000000,"12"]}]}}`, 12, nil},
		{"NaN", 200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"NaN"]}]}}`, math.NaN(), nil},
		{"empty", 200, `{"status":"success","data":{"resultType":"vector","result":[]}}`, 0, ErrNoData},
		{"two", 200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]},{"metric":{},"value":[1,"2"]}]}}`, 0, ErrManyValues},
		{"matrix", 200, `{"status":"success","data":{"resultType":"matrix","result":[]}}`, 0, ErrNotNumber},
		{"string value", 200, `{"status":"success","data":{"resultType":"scalar","result":[1,"abc"]}}`, 0, ErrNotNumber},
		{"bad_data", 400, `{"status":"error","errorType":"bad_data","error":"parse error"}`, 0, ErrBadQuery},
		{"timeout", 503, `{"status":"error","errorType":"timeout","error":"query timed out"}`, 0, ErrUnavailable},
		{"html", 502, `<html>bad gateway</html>`, 0, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/v1/query" || r.FormValue("query") != "q" {
					http.Error(w, "wrong request "+r.URL.String(), 400)
					return
				}
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			p, err := NewPromQL(PromQLConfig{URL: srv.URL + "/", Query: "q"})
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Query(context.Background())
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || !(got == tt.want || math.IsNaN(got) && math.IsNaN(tt.want)) {
				t.Fatalf("Query() = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestPromQLHangingServer(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	p, err := NewPromQL(PromQLConfig{URL: srv.URL, Query: "up", Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Query(context.Background()); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrUnavailable after the deadline", err)
	}
}

func TestNewPromQLRefuses(t *testing.T) {
	for _, cfg := range []PromQLConfig{
		{URL: "prometheus:9090", Query: "up"},
		{URL: "http://user:pw@prometheus:9090", Query: "up"},
		{URL: "http://prometheus:9090", Query: " "},
	} {
		if _, err := NewPromQL(cfg); err == nil {
			t.Errorf("NewPromQL(%+v) accepted", cfg)
		} else if strings.Contains(err.Error(), "pw@") {
			t.Errorf("error quotes credentials: %v", err)
		}
	}
}
