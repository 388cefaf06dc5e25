package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	hostRoot, stateDir          string
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
	b := &box{hostRoot: cfg.HostRoot, stateDir: cfg.StateDir}
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
	// The Downward API, as the kubelet would set it.
	c := o.ds.Spec.Template.Spec.Containers[0]
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			b.env = append(b.env, e.Name+"="+downward(e.ValueFrom.FieldRef))
		}
	}
	for _, cp := range c.SecurityContext.Capabilities.Add {
		b.caps = append(b.caps, strings.ToLower(string(cp)))
	}
	// Mount points the namespace binds over; made here when this machine
	// lacks them, removed at the end.
	for _, p := range []string{b.hostRoot, b.stateDir} {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(p) })
		}
	}
	return b
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
exec setpriv --bounding-set="$BOX_CAPS" -- "$@"`
	full := append([]string{"-m", "--propagation", "private", "sh", "-c", script, "box", b.bin}, args...)
	cmd := exec.CommandContext(ctx, "unshare", full...)
	cmd.Env = append(os.Environ(), b.env...)
	cmd.Env = append(cmd.Env, "BOX_HOST="+b.hostSrc, "BOX_HOST_ROOT="+b.hostRoot, "BOX_STATE="+b.state,
		"BOX_STATE_DIR="+b.stateDir, "BOX_CAPS="+bounding, "OTEL_METRICS_EXPORTER=none")
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

	t.Run("preflight passes with the listed capabilities", func(t *testing.T) {
		r, code := b.preflight(t, "", "--plugin-dir", "")
		if code != 0 || r.Verdict() != "ready" {
			t.Fatalf("exit %d, verdict %s, missing %+v", code, r.Verdict(), r.Missing())
		}
		for _, it := range r.Items {
			if it.Name == "host root" && !strings.Contains(it.Found, "read-only") {
				t.Errorf("host root %q: the box mounts it read-only", it.Found)
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
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		// The image holds the plugins; this machine has none installed.
		cmd := b.command(ctx, "bpf", "agent", "--config", b.config, "--listen", addr, "--plugin-dir", "")
		var logs lockedBuffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		defer func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			<-exited
		}()
		body := ""
		for ctx.Err() == nil {
			select {
			case err := <-exited:
				exited <- err
				t.Fatalf("the agent exited (%v) before ready; logs:\n%s", err, logs.String())
			default:
			}
			resp, err := http.Get("http://" + addr + "/readyz")
			if err == nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					body = string(b)
					break
				}
			}
			time.Sleep(500 * time.Millisecond)
		}
		if body == "" {
			t.Fatalf("/readyz never 200 within the deadline; agent logs:\n%s", logs.String())
		}
		if !strings.Contains(body, "sensors off") || !strings.Contains(body, "CAP_BPF") {
			t.Errorf("/readyz %q: want ready, sensors off naming CAP_BPF", body)
		}
		// The resource carries the Downward API's k8s.* values and the
		// checks ran against the box's host root.
		resp, err := http.Get("http://" + addr + "/status")
		if err != nil {
			t.Fatal(err)
		}
		st, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
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
