package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/otelcfg/otlptest"
)

// shadowPATH is a PATH whose first go is a script in front of the real
// one: go.binary fails on it, for real.
func shadowPATH(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	real, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	// The real go by absolute path: by name the script would exec itself.
	// It breaks `go env`, so it is no working wrapper but a script that
	// shadows the go command (a wrapper through which go env answers
	// passes go.binary).
	script := "#!/bin/sh\n[ \"$1\" = env ] && { echo 'shadowing script: go env is not here' >&2; exit 1; }\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return "PATH=" + dir + ":" + os.Getenv("PATH")
}

func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestCheckExport(t *testing.T) {
	recv := otlptest.Start(t, otlptest.Options{})
	ca := otlptest.NewCA(t)
	tlsRecv := otlptest.Start(t, otlptest.Options{TLS: ca.ServerTLS(t, false)})
	partial := otlptest.Start(t, otlptest.Options{})
	partial.PartialSuccess(5, "tenant over quota")
	dead := "http://" + deadAddr(t)
	machineID, _ := os.ReadFile("/etc/machine-id")
	tests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		// wantStatus is go.binary's status in the metrics received; ""
		// when nothing must arrive.
		wantStatus string
		wantScore  float64
		stderr     []string // lines stderr must contain
	}{
		{"pass over grpc", []string{"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_ENDPOINT=" + recv.GRPCEndpoint, "K8S_NODE_NAME=node-e2e"},
			nil, 0, "pass", 100, nil},
		{"fail over http, json report", []string{"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT=" + strings.TrimSuffix(recv.HTTPEndpoint, "/v1/metrics"), "K8S_NODE_NAME=node-e2e", "SHADOW"},
			[]string{"-o", "json"}, 1, "fail", 0, nil},
		{"TLS with a custom CA and headers", []string{"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=" + tlsRecv.GRPCEndpoint,
			"OTEL_EXPORTER_OTLP_CERTIFICATE=" + ca.PEMFile, "OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20e2e", "OTEL_EXPORTER_OTLP_COMPRESSION=gzip", "K8S_NODE_NAME=node-e2e", "TLS"},
			nil, 0, "pass", 100, nil},
		{"partial success: exit 3", []string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=" + partial.HTTPEndpoint, "K8S_NODE_NAME=node-e2e", "PARTIAL"},
			nil, ExitExport, "pass", 100, []string{"gopatrol: export to " + partial.HTTPEndpoint + ": ", "tenant over quota (5 metric data points rejected)"}},
		{"collector down, checks pass: exit 3", []string{"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_ENDPOINT=" + dead, "OTEL_EXPORTER_OTLP_TIMEOUT=1000"},
			nil, ExitExport, "", 0, []string{"gopatrol: export to " + dead + ": ", "connection refused"}},
		{"collector down, a check fails: exit 1", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + dead, "OTEL_EXPORTER_OTLP_TIMEOUT=1000", "SHADOW"},
			nil, 1, "", 0, []string{"gopatrol: export to " + dead + "/v1/metrics: ", "connection refused"}},
		{"console on stderr", []string{"OTEL_METRICS_EXPORTER=console"},
			[]string{"-o", "json"}, 0, "", 0, []string{`"gopatrol.check.result"`, `"go.binary"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := recv
			var env []string
			for _, e := range tt.env {
				switch e {
				case "SHADOW":
					e = shadowPATH(t)
				case "TLS":
					r = tlsRecv
					continue
				case "PARTIAL":
					r = partial
					continue
				}
				env = append(env, e)
			}
			before := len(r.Requests())
			args := append([]string{"check", "--export", "--only", "go.binary"}, tt.args...)
			start := time.Now()
			stdout, stderr, code := gopatrol(t, env, args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout, stderr)
			}
			if time.Since(start) > 10*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			// The report is always there, whatever happened to the export.
			if slicesContains(tt.args, "json") {
				var rep check.Report
				if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Results) != 1 {
					t.Errorf("stdout is not the JSON report: %v\n%s", err, stdout)
				}
			} else if !strings.Contains(stdout, "go.binary") {
				t.Errorf("stdout has no report: %q", stdout)
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			reqs := r.Requests()[before:]
			if tt.wantStatus == "" {
				if len(reqs) != 0 {
					t.Errorf("receiver got %d exports, want none", len(reqs))
				}
				return
			}
			if len(reqs) != 1 {
				t.Fatalf("receiver got %d exports, want 1 (stderr %s)", len(reqs), stderr)
			}
			if r == tlsRecv && (reqs[0].Headers["authorization"] != "Bearer e2e" || !reqs[0].Gzip) {
				t.Errorf("over TLS: authorization %q gzip %v", reqs[0].Headers["authorization"], reqs[0].Gzip)
			}
			results := map[string]float64{}
			var score float64 = -1
			var durations int
			for _, p := range otlptest.Points(reqs) {
				switch p.Metric {
				case "gopatrol.check.result":
					if p.Attrs["gopatrol.check.id"] == "go.binary" {
						results[p.Attrs["gopatrol.check.status"]] = p.Value
					}
				case "gopatrol.check.duration":
					if p.Attrs["gopatrol.check.id"] == "go.binary" && p.Attrs["gopatrol.check.status"] == tt.wantStatus && p.Count == 1 && p.Unit == "s" {
						durations++
					}
				case "gopatrol.health.score":
					score = p.Value
				}
			}
			want := map[string]float64{"pass": 0, "warn": 0, "fail": 0, "skip": 0, "error": 0}
			want[tt.wantStatus] = 1
			for s, v := range want {
				if got, ok := results[s]; !ok || got != v {
					t.Errorf("gopatrol.check.result{go.binary,%s} = %v (present %v), want %v", s, got, ok, v)
				}
			}
			if durations != 1 {
				t.Errorf("want one gopatrol.check.duration sample for go.binary %s", tt.wantStatus)
			}
			if score != tt.wantScore {
				t.Errorf("gopatrol.health.score = %v, want %v", score, tt.wantScore)
			}
			res, _ := otlptest.Resource(reqs)
			if res["service.name"] != "gopatrol" || res["k8s.node.name"] != "node-e2e" || res["os.type"] != "linux" || res["service.version"] == "" {
				t.Errorf("resource %v", res)
			}
			if id := strings.TrimSpace(string(machineID)); id != "" && res["host.id"] != id {
				t.Errorf("host.id %q, want /etc/machine-id %q", res["host.id"], id)
			}
		})
	}
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Malformed OTEL_* stop the command before any check runs: exit 2, one
// line naming the variable, no report.
func TestCheckExportBadConfig(t *testing.T) {
	tests := []struct {
		env   string
		names string
	}{
		{"OTEL_EXPORTER_OTLP_HEADERS=authorization", "OTEL_EXPORTER_OTLP_HEADERS"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL=udp", "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"OTEL_EXPORTER_OTLP_TIMEOUT=5s", "OTEL_EXPORTER_OTLP_TIMEOUT"},
		{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=collector:4318", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"},
		{"OTEL_METRICS_EXPORTER=prometheus", "prometheus"},
		{"OTEL_CONFIG_FILE=/no/such/otel.yaml", "/no/such/otel.yaml"},
	}
	for _, tt := range tests {
		stdout, stderr, code := gopatrol(t, []string{tt.env}, "check", "--export", "--only", "go.binary")
		if code != 2 {
			t.Errorf("%s: exit %d, want 2", tt.env, code)
		}
		if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(lines[0], tt.names) {
			t.Errorf("%s: stderr %q: want one line naming %s", tt.env, stderr, tt.names)
		}
		if stdout != "" {
			t.Errorf("%s: checks ran anyway: %q", tt.env, stdout)
		}
	}
	// Without --export the variables are none of check's business.
	if _, stderr, code := gopatrol(t, []string{"OTEL_EXPORTER_OTLP_HEADERS=authorization"}, "check", "--only", "go.binary"); code != 0 {
		t.Errorf("without --export: exit %d %s", code, stderr)
	}
}
