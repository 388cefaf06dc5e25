package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gopatrol/gopatrol/agent/preflight"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// The DaemonSet in a box: the real binary, run as the eks overlay's
// DaemonSet runs it (its capabilities, its Downward API variables, its
// host root path and config), in a mount namespace of its own where a
// throwaway "host" root is bind-mounted read-only at the config's
// host_root. Only the listed capabilities reach it (setpriv's bounding
// set).

type box struct {
	bin, config, hostSrc, state string
	env                         []string
	caps                        []string // capabilities(7) names without CAP_
	// componentCaps are caps with the uprobes-sys-admin component.
	componentCaps      []string
	hostRoot, stateDir string
	// rules is the rules ConfigMap's files, mounted at rulesDir as the
	// kubelet mounts the volume.
	rules, rulesDir string
}

func newBox(t *testing.T) *box {
	t.Helper()
	testgate.Root(t, "make mount namespaces and drop capabilities")
	for _, tool := range []string{"unshare", "setpriv", "mount"} {
		testgate.Tool(t, tool, "util-linux")
	}
	o := build(t, "eks")
	cfg, data := agentConfig(t, o)
	dir := t.TempDir()
	b := &box{hostRoot: cfg.HostRoot, stateDir: cfg.StateDir, rulesDir: cfg.Rules.Dir}
	// The binary of this tree.
	b.bin = filepath.Join(dir, "gopatrol")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", b.bin, "./cmd/gopatrol")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b.config = filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(b.config, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	// The throwaway host: a root file system with nothing of this
	// machine's in it.
	b.hostSrc = filepath.Join(dir, "host")
	for _, d := range []string{"etc", "usr/bin", "tmp"} {
		if err := os.MkdirAll(filepath.Join(b.hostSrc, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(b.hostSrc, "etc/os-release"), []byte("ID=gopatrol-box\n"), 0o644)
	b.state = filepath.Join(dir, "state")
	os.Mkdir(b.state, 0o700)
	// The rules volume: the generated ConfigMap's files.
	b.rules = filepath.Join(dir, "rules")
	os.Mkdir(b.rules, 0o755)
	rulesMap := volume(t, o.ds, "rules").ConfigMap
	for _, cm := range o.configs {
		if rulesMap != nil && cm.Name == rulesMap.Name {
			for name, data := range cm.Data {
				if err := os.WriteFile(filepath.Join(b.rules, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// The Downward API, as the kubelet would set it.
	c := o.ds.Spec.Template.Spec.Containers[0]
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			b.env = append(b.env, e.Name+"="+downward(e.ValueFrom.FieldRef))
		}
	}
	b.caps = boxCaps(c)
	b.componentCaps = boxCaps(buildDir(t, "testdata/uprobes-sys-admin/eks").ds.Spec.Template.Spec.Containers[0])
	// Mount points the namespace binds over; made here when this machine
	// lacks them, removed at the end.
	for _, p := range []string{b.hostRoot, b.stateDir, b.rulesDir} {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(p) })
		}
	}
	return b
}

// boxCaps are c's added capabilities as setpriv spells them.
func boxCaps(c corev1.Container) []string {
	var caps []string
	for _, cp := range c.SecurityContext.Capabilities.Add {
		caps = append(caps, strings.ToLower(string(cp)))
	}
	return caps
}

func downward(f *corev1.ObjectFieldSelector) string {
	switch f.FieldPath {
	case "spec.nodeName":
		return "box-node"
	case "metadata.name":
		return "gopatrol-box"
	case "metadata.namespace":
		return "gopatrol"
	case "metadata.uid":
		return "0b0c0d0e-0000-4000-8000-000000000001"
	case "status.hostIP":
		return "127.0.0.1"
	}
	return "unknown"
}

// command runs gopatrol args in the box with the box's capabilities minus
// drop.
func (b *box) command(ctx context.Context, drop string, args ...string) *exec.Cmd {
	var caps []string
	for _, c := range b.caps {
		if c != drop {
			caps = append(caps, "+"+c)
		}
	}
	bounding := "-all"
	if len(caps) > 0 {
		bounding += "," + strings.Join(caps, ",")
	}
	script := `set -e
mount --bind "$BOX_HOST" "$BOX_HOST_ROOT"
mount -o remount,bind,ro "$BOX_HOST_ROOT"
mount --bind "$BOX_STATE" "$BOX_STATE_DIR"
mount --bind "$BOX_RULES" "$BOX_RULES_DIR"
mount -o remount,bind,ro "$BOX_RULES_DIR"
exec setpriv --bounding-set="$BOX_CAPS" -- "$@"`
	full := append([]string{"-m", "--propagation", "private", "sh", "-c", script, "box", b.bin}, args...)
	cmd := exec.CommandContext(ctx, "unshare", full...)
	cmd.Env = append(os.Environ(), b.env...)
	cmd.Env = append(cmd.Env, "BOX_HOST="+b.hostSrc, "BOX_HOST_ROOT="+b.hostRoot, "BOX_STATE="+b.state,
		"BOX_STATE_DIR="+b.stateDir, "BOX_RULES="+b.rules, "BOX_RULES_DIR="+b.rulesDir,
		"BOX_CAPS="+bounding, "OTEL_METRICS_EXPORTER=none")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (b *box) preflight(t *testing.T, drop string, extra ...string) (preflight.Report, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := b.command(ctx, drop, append([]string{"preflight", "--config", b.config, "-o", "json"}, extra...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var r preflight.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("preflight -o json (exit %d): %v\n%s\n%s", code, err, stdout.Bytes(), stderr.Bytes())
	}
	return r, code
}

func TestDaemonSetInABox(t *testing.T) {
	b := newBox(t)

	// With the manifest's capabilities, preflight passes, or names the
	// one thing some kernels refuse them: uprobes without CAP_SYS_ADMIN
	// (this project's 6.18 VM does). Then the uprobes-sys-admin
	// component's capabilities are the ones the sensors run with.
	listed, code := b.preflight(t, "", "--plugin-dir", "")
	uprobesNeedAdmin := slices.ContainsFunc(listed.Missing(), func(it preflight.Item) bool { return it.Name == "uprobe attach" })
	sensors := b
	if uprobesNeedAdmin {
		sensors = &box{}
		*sensors = *b
		sensors.caps = b.componentCaps
	}

	t.Run("preflight with the listed capabilities passes or names the uprobe refusal", func(t *testing.T) {
		want := "ready"
		if uprobesNeedAdmin {
			want = "degraded"
		}
		if code != 0 || listed.Verdict() != want {
			t.Fatalf("exit %d, verdict %s, want %s; missing %+v", code, listed.Verdict(), want, listed.Missing())
		}
		for _, it := range listed.Missing() {
			if it.Name != "uprobe attach" {
				t.Errorf("missing %+v with the listed capabilities", it)
				continue
			}
			t.Logf("this kernel refuses uprobes to the manifest's capabilities: %s", it.Found)
			if !strings.HasPrefix(it.Found, "refused with CAP_PERFMON held") || !strings.Contains(it.Found, "perf_uprobe") ||
				!strings.Contains(it.Fix, "CAP_SYS_ADMIN") || !strings.Contains(it.Fix, "components/uprobes-sys-admin") ||
				!strings.Contains(it.Cost, "file-access failures and TLS handshakes not observed") {
				t.Errorf("uprobe attach %+v: want the refusal named, CAP_SYS_ADMIN and the component as the fix, what it costs", it)
			}
		}
		for _, it := range listed.Items {
			if it.Name == "host root" && !strings.Contains(it.Found, "read-only") {
				t.Errorf("host root %q: the box mounts it read-only", it.Found)
			}
		}
	})

	if uprobesNeedAdmin {
		t.Run("preflight passes with the uprobes-sys-admin component's capabilities", func(t *testing.T) {
			r, code := sensors.preflight(t, "", "--plugin-dir", "")
			if code != 0 || r.Verdict() != "ready" {
				t.Fatalf("capabilities %v: exit %d, verdict %s, missing %+v", sensors.caps, code, r.Verdict(), r.Missing())
			}
		})
	}

	t.Run("the sensors see a go build started outside the box", func(t *testing.T) {
		// /metrics needs the Prometheus exporter; the overlay's OTLP
		// collector is not here.
		addr, ready, _ := sensors.startAgent(t, "", "OTEL_METRICS_EXPORTER=prometheus")
		if !strings.Contains(ready, "sensors attached") {
			t.Fatalf("/readyz %q with capabilities %v, which preflight found enough for the sensors", ready, sensors.caps)
		}
		// The resource carries the Downward API's values.
		metrics := string(get(t, "http://"+addr+"/metrics"))
		var info string
		for _, line := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(line, "target_info{") {
				info = line
			}
		}
		for _, want := range []string{`k8s_node_name="box-node"`, `k8s_pod_name="gopatrol-box"`,
			`k8s_namespace_name="gopatrol"`, `k8s_pod_uid="0b0c0d0e-0000-4000-8000-000000000001"`} {
			if !strings.Contains(info, want) {
				t.Errorf("target_info %q lacks %s: the resource does not carry the Downward API's k8s.* values", info, want)
			}
		}
		before := compiles(metrics)
		// A build the test starts, in this machine's mount namespace: a
		// package of its own so that compile runs whatever the cache holds.
		src := t.TempDir()
		os.WriteFile(filepath.Join(src, "go.mod"), []byte("module boxbuild\n\ngo 1.21\n"), 0o644)
		os.WriteFile(filepath.Join(src, "main.go"), []byte(fmt.Sprintf("package main\n\nconst stamp = %d\n\nfunc main() { println(stamp) }\n", time.Now().UnixNano())), 0o644)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		gobuild := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(src, "out"), ".")
		gobuild.Dir = src
		gobuild.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=")
		gobuild.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		gobuild.Cancel = func() error { return syscall.Kill(-gobuild.Process.Pid, syscall.SIGKILL) }
		gobuild.WaitDelay = 5 * time.Second
		if out, err := gobuild.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%.2000s", err, out)
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
			after := compiles(string(get(t, "http://"+addr+"/metrics")))
			if after > before {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("gopatrol.toolchain.execs of compile stayed at %v after a go build outside the box", after)
			}
		}
	})

	t.Run("without CAP_BPF preflight names it", func(t *testing.T) {
		r, code := b.preflight(t, "bpf", "--plugin-dir", "")
		if code != 0 || r.Verdict() != "degraded" {
			t.Fatalf("exit %d, verdict %s: want degraded (exit 0)", code, r.Verdict())
		}
		m := r.Missing()
		if len(m) == 0 || m[0].Name != "CAP_BPF" || !strings.Contains(m[0].Cost, "sensors off") {
			t.Errorf("missing %+v, want CAP_BPF costing the sensors", m)
		}
	})

	t.Run("without CAP_BPF the agent runs degraded", func(t *testing.T) {
		addr, body, _ := b.startAgent(t, "bpf")
		if !strings.Contains(body, "sensors off") || !strings.Contains(body, "CAP_BPF") {
			t.Errorf("/readyz %q: want ready, sensors off naming CAP_BPF", body)
		}
		// The resource carries the Downward API's k8s.* values and the
		// checks ran against the box's host root.
		st := get(t, "http://"+addr+"/status")
		// This machine has a go on PATH; the box's host root has none: a
		// go.binary that finds none looked in the host root, not here.
		if _, err := exec.LookPath("go"); err != nil {
			t.Fatalf("this machine has no go on PATH, the test cannot tell the roots apart: %v", err)
		}
		var status struct {
			LastPatrol struct {
				Report struct {
					Results []struct {
						ID, Status, Summary string
					} `json:"results"`
				} `json:"report"`
			} `json:"last_patrol"`
		}
		if err := json.Unmarshal(st, &status); err != nil {
			t.Fatalf("/status: %v\n%.2000s", err, st)
		}
		found := false
		for _, r := range status.LastPatrol.Report.Results {
			if r.ID == "go.binary" {
				found = true
				if r.Status != "fail" || !strings.Contains(r.Summary, "no go") {
					t.Errorf("go.binary %s %q: want fail, no go in the box's host root", r.Status, r.Summary)
				}
			}
		}
		if !found {
			t.Errorf("/status's last patrol has no go.binary result:\n%.2000s", st)
		}
	})
}

// startAgent starts `gopatrol agent` in the box with its capabilities
// minus drop and env added, waits for /readyz to answer 200 and returns
// the listen address, that answer and a stop that ends the agent with
// SIGTERM and waits for it (also run when the test ends).
func (b *box) startAgent(t *testing.T, drop string, env ...string) (addr, ready string, stop func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	// The image holds the plugins; this machine has none installed.
	cmd := b.command(ctx, drop, "agent", "--config", b.config, "--listen", addr, "--plugin-dir", "")
	cmd.Env = append(cmd.Env, env...)
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			<-exited
			cancel()
			if t.Failed() {
				t.Logf("agent logs:\n%.8000s", logs.String())
			}
		})
	}
	t.Cleanup(stop)
	for ctx.Err() == nil {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the agent exited (%v) before ready", err)
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr, string(body), stop
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatal("/readyz never 200 within the deadline")
	return "", "", stop
}

// get returns the body of a GET that must answer 200.
func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%.2000s", url, resp.Status, body)
	}
	return body
}

var compileExecs = regexp.MustCompile(`(?m)^gopatrol_toolchain_execs_total\{[^}]*process_executable_name="compile"[^}]*\} (\S+)$`)

// compiles is the exec count of compile in a /metrics exposition.
func compiles(metrics string) float64 {
	var n float64
	for _, m := range compileExecs.FindAllStringSubmatch(metrics, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		n += v
	}
	return n
}

// lockedBuffer is a bytes.Buffer safe for the process's writers and the
// test's readers, bounded to 1 MiB.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 {
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
