package collector

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/internal/loopback"
	"github.com/gopatrol/gopatrol/internal/testgate"
	"github.com/gopatrol/gopatrol/otelcfg/otlptest"
)

// ocbVersion pins the OpenTelemetry Collector Builder; builder.yaml's
// components carry the same version (a test checks that).
const ocbVersion = "v0.165.0"

// buildTimeout bounds the first, uncached build: installing ocb and
// compiling the Collector (measured in docs/deploy.md).
const buildTimeout = 20 * time.Minute

// run runs a command under a deadline in its own process group, killed
// at the end, with output bounded to 1 MiB.
func run(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out := &capped{max: 1 << 20}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	return out.String(), err
}

// capped keeps the first max bytes written to it.
type capped struct {
	buf bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (c *capped) String() string { return c.buf.String() }

// otelcol returns the Collector built from builder.yaml, building it into
// the cache first when it is not there. A build that fails is a missing
// tool: it fails the test under GOPATROL_REQUIRE_BPF=1, skips it elsewhere.
func otelcol(t *testing.T) string {
	t.Helper()
	testgate.Tool(t, "go", "the Go toolchain")
	manifest, err := os.ReadFile("builder.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("no cache directory for the Collector: %v", err)
	}
	sum := sha256.Sum256(manifest)
	dir := filepath.Join(cacheRoot, "gopatrol", "otelcol-"+ocbVersion+"-"+hex.EncodeToString(sum[:6]))
	bin := filepath.Join(dir, "dist", "otelcol-gopatrol")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Within go test's own -timeout too, so that a slow first build ends
	// in a clear message (make collector builds it without that bound)
	// rather than in the test binary's panic.
	budget := buildTimeout
	if d, ok := t.Deadline(); ok {
		budget = min(budget, time.Until(d)-90*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()
	if out, err := run(ctx, dir, []string{"GOBIN=" + filepath.Join(dir, "bin")}, "go", "install", "go.opentelemetry.io/collector/cmd/builder@"+ocbVersion); err != nil {
		testgate.Missing(t, "installing ocb %s: %v\n%s", ocbVersion, err, tail(out))
	}
	// The manifest's output path, rewritten to the cache; its build
	// directory is removed and rebuilt whole, so a half-built one from an
	// interrupted run does not linger.
	dist := filepath.Join(dir, "dist")
	os.RemoveAll(dist)
	m := regexp.MustCompile(`(?m)^(\s*output_path:).*$`).ReplaceAll(manifest, []byte("${1} "+dist))
	if err := os.WriteFile(filepath.Join(dir, "builder.yaml"), m, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(ctx, dir, nil, filepath.Join(dir, "bin", "builder"), "--config", "builder.yaml"); err != nil {
		os.RemoveAll(dist)
		testgate.Missing(t, "building the Collector with ocb %s (after %v of a %v budget; `make collector` builds it without go test's timeout): %v\n%s",
			ocbVersion, time.Since(start).Round(time.Second), budget.Round(time.Second), err, tail(out))
	}
	t.Logf("built the Collector in %v: %s", time.Since(start).Round(time.Second), bin)
	return bin
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

// The components' versions are the builder's: ocb refuses nothing, but a
// Collector mixing versions fails at run time in ways the test would
// report as a broken config.
func TestBuilderManifestPinned(t *testing.T) {
	b, err := os.ReadFile("builder.yaml")
	if err != nil {
		t.Fatal(err)
	}
	gomods := regexp.MustCompile(`(?m)^\s*- gomod: (\S+) (v\S+)`).FindAllStringSubmatch(string(b), -1)
	if len(gomods) == 0 {
		t.Fatal("builder.yaml lists no components")
	}
	for _, m := range gomods {
		if strings.HasPrefix(m[2], "v0.") && m[2] != ocbVersion {
			t.Errorf("%s at %s, the builder is %s: bump them together", m[1], m[2], ocbVersion)
		}
	}
	if !strings.Contains(string(b), "version: "+strings.TrimPrefix(ocbVersion, "v")) {
		t.Errorf("builder.yaml's dist.version is not %s", ocbVersion)
	}
}

// backendEnv points config.yaml's two exporters at loopback.
func backendEnv(otlp, remoteWrite string) []string {
	return []string{"BACKEND_OTLP_ENDPOINT=" + otlp, "PROMETHEUS_REMOTE_WRITE_URL=" + remoteWrite}
}

func TestCollectorValidatesConfig(t *testing.T) {
	bin := otelcol(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env := backendEnv("http://127.0.0.1:1", "http://127.0.0.1:1/api/v1/write")
	if out, err := run(ctx, ".", env, bin, "validate", "--config", "config.yaml"); err != nil {
		t.Fatalf("otelcol validate --config config.yaml: %v\n%s", err, out)
	}
	// And validate refuses what is wrong, so the pass above means
	// something: a processor the pipeline names but nobody defines.
	cfg, _ := os.ReadFile("config.yaml")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, bytes.Replace(cfg, []byte("processors: [memory_limiter, batch]"), []byte("processors: [memory_limiter, batch, groupbyattrs]"), 1), 0o644)
	out, err := run(ctx, ".", env, bin, "validate", "--config", bad)
	if err == nil || !strings.Contains(out, "groupbyattrs") {
		t.Fatalf("validate passed a pipeline naming an undefined processor (err %v):\n%s", err, out)
	}
}

// The agent's export goes through the Collector running config.yaml to an
// OTLP backend and to Prometheus remote write.
func TestCollectorCarriesTheAgentsExport(t *testing.T) {
	bin := otelcol(t)
	backend := otlptest.Start(t, otlptest.Options{})
	var writes atomic.Int64
	rw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		// Remote write 1.0: snappy-compressed protobuf, POSTed.
		if r.Method == http.MethodPost && r.Header.Get("Content-Encoding") == "snappy" &&
			strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-protobuf") && len(body) > 0 {
			writes.Add(1)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rw.Close()

	grpcAddr, httpAddr := loopback.UnusedAddr(t), loopback.UnusedAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// config.yaml as shipped, merged with an overlay that moves only the
	// listen addresses to loopback, shortens the batch window (10 s),
	// lets the otlp exporter speak plaintext to the loopback backend (it
	// uses TLS by default, as a real backend wants) and turns off the
	// Collector's own telemetry listener.
	overlay := filepath.Join(t.TempDir(), "loopback.yaml")
	os.WriteFile(overlay, []byte(fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
processors:
  batch:
    timeout: 200ms
exporters:
  otlp:
    tls:
      insecure: true
service:
  telemetry:
    metrics:
      level: none
`, grpcAddr, httpAddr)), 0o644)
	cmd := exec.CommandContext(ctx, bin, "--config", "config.yaml", "--config", overlay)
	cmd.Env = append(os.Environ(), backendEnv(backend.GRPCEndpoint, rw.URL+"/api/v1/write")...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	logs := &capped{max: 1 << 20}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("collector logs:\n%s", tail(logs.String()))
		}
	}()
	// Ready when the gRPC receiver accepts.
	for deadline := time.Now().Add(time.Minute); ; {
		if c, err := net.DialTimeout("tcp", grpcAddr, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			t.Fatalf("the Collector never listened on %s", grpcAddr)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The agent's side: the real binary's one-shot export.
	gopatrol := filepath.Join(t.TempDir(), "gopatrol")
	if out, err := run(ctx, "../..", nil, "go", "build", "-o", gopatrol, "./cmd/gopatrol"); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := run(ctx, ".", []string{
		"OTEL_METRICS_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + grpcAddr, "K8S_NODE_NAME=collector-test-node",
	}, gopatrol, "check", "--export", "--only", "go.binary", "--plugin-dir", "")
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() > 1) {
		t.Fatalf("gopatrol check --export: %v\n%s", err, out)
	}

	reqs := backend.Wait(t, 1, time.Minute)
	found := false
	for _, req := range reqs {
		for _, rm := range req.Body.GetResourceMetrics() {
			attrs := otlptest.Attrs(rm.GetResource().GetAttributes())
			if attrs["k8s.node.name"] != "collector-test-node" {
				t.Errorf("resource %v: the Collector dropped or changed k8s.node.name", attrs)
			}
		}
	}
	for _, p := range otlptest.Points(reqs) {
		if p.Metric == "gopatrol.check.result" && p.Attrs["gopatrol.check.id"] == "go.binary" {
			found = true
		}
	}
	if !found {
		t.Fatalf("the backend got %d exports without gopatrol.check.result for go.binary", len(reqs))
	}
	for deadline := time.Now().Add(time.Minute); writes.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no Prometheus remote write reached the loopback endpoint within a minute")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("OTLP exports: %d, remote writes: %d", len(reqs), writes.Load())
}
