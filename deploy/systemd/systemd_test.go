package systemd

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent"
	"github.com/gopatrol/gopatrol/agent/preflight"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// unit returns the [Service] keys of gopatrol.service (the last value of a
// repeated key).
func unit(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("gopatrol.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, _ := strings.Cut(line, "=")
			keys[k] = v
		}
	}
	return keys
}

func TestUnitMatchesConfig(t *testing.T) {
	cfg, err := agent.Load("agent.yaml", nil)
	if err != nil {
		t.Fatalf("agent.yaml does not pass agent.Load: %v", err)
	}
	u := unit(t)
	want := preflight.NeededCaps(preflight.Options{
		HostRoot: cfg.HostRoot, StateDir: cfg.StateDir, Sensors: cfg.Sensors.Enabled,
		TLS: cfg.Sensors.TLS, RequireSensors: cfg.Sensors.Require, AsUser: cfg.Checks.AsUser,
	})
	slices.Sort(want)
	for _, key := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		got := strings.Fields(u[key])
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s=%v, want exactly %v (preflight.NeededCaps)", key, got, want)
		}
	}
	for key, v := range map[string]string{"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes"} {
		if u[key] != v {
			t.Errorf("%s=%q, want %q", key, u[key], v)
		}
	}
	if got := filepath.Join("/var/lib", u["StateDirectory"]); got != cfg.StateDir {
		t.Errorf("StateDirectory gives %s, config state_dir is %s", got, cfg.StateDir)
	}
	for _, key := range []string{"ExecStart", "ExecStartPre"} {
		if !strings.Contains(u[key], "--config /etc/gopatrol/agent.yaml") {
			t.Errorf("%s=%q does not read /etc/gopatrol/agent.yaml", key, u[key])
		}
	}
}

// TestSystemdAnalyzeVerify runs systemd's own checker on the unit, with
// the binary it names present (a throwaway root holds it, so the test
// needs no installation).
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze := testgate.Tool(t, "systemd-analyze", "systemd")
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "bin", "etc/systemd/system", "etc/gopatrol"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// systemd-analyze checks that each Exec*'s binary exists and is
	// executable.
	for _, exe := range []string{"usr/bin/gopatrol", "bin/kill"} {
		if err := os.WriteFile(filepath.Join(root, exe), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile("gopatrol.service")
	if err != nil {
		t.Fatal(err)
	}
	unitPath := filepath.Join(root, "etc/systemd/system/gopatrol.service")
	if err := os.WriteFile(unitPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, analyze, "verify", "--root="+root, "--man=no", "--recursive-errors=no", unitPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	// Only what concerns gopatrol.service counts: systemd also reports the
	// units it pulls in (network-online.target) when the root lacks them.
	var ours []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "gopatrol.service") {
			ours = append(ours, l)
		}
	}
	if len(ours) > 0 {
		t.Errorf("systemd-analyze verify (%v):\n%s", err, strings.Join(ours, "\n"))
	}
	t.Logf("systemd-analyze verify: %v\n%s", err, out)
}
