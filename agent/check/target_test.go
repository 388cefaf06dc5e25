package check_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

func TestLookupUserReadsTargetRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nbuilder:x:1234:100::/home/builder:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("users:x:100:\ndocker:x:999:alice,builder\nother:x:5:alice\n"), 0o644)
	target := &check.Target{Root: root}
	for _, name := range []string{"builder", "1234"} {
		u, err := target.LookupUser(name)
		if err != nil {
			t.Fatal(err)
		}
		if u.Name != "builder" || u.UID != 1234 || u.GID != 100 || u.Home != "/home/builder" || len(u.Groups) != 2 || u.Groups[1] != 999 {
			t.Errorf("LookupUser(%q) = %+v", name, u)
		}
	}
	_, err := target.LookupUser("nobody-here")
	if !errors.Is(err, check.ErrUnknownUser) || !strings.Contains(err.Error(), "nobody-here") {
		t.Errorf("unknown user error = %v", err)
	}
}

func TestLookPathLikeWhichAll(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, b} {
		os.Mkdir(d, 0o755)
	}
	os.WriteFile(filepath.Join(a, "tool"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(b, "tool"), []byte("#!/bin/sh\n"), 0o644) // not executable
	os.Mkdir(filepath.Join(dir, "c"), 0o755)
	os.Mkdir(filepath.Join(dir, "c", "tool"), 0o755) // a directory
	target := &check.Target{Root: "/", Environ: []string{"PATH=" + a + ":relative:" + b + ":" + filepath.Join(dir, "c") + ":" + a}}
	got := target.LookPath("tool")
	if len(got) != 1 || got[0] != filepath.Join(a, "tool") {
		t.Errorf("LookPath = %v, want only %s/tool once", got, a)
	}
}

func TestCommandKillsProcessGroupOnCancel(t *testing.T) {
	target, err := check.LocalTarget()
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "child")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancel once the grandchild runs, however loaded the machine is.
	go func() {
		for ctx.Err() == nil {
			if b, _ := os.ReadFile(pidFile); strings.HasSuffix(string(b), "\n") {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	// The shell starts a grandchild that would outlive a plain kill.
	cmd := target.Command(ctx, "/bin/sh", "-c", "sleep 300 & echo $! > "+pidFile+"; wait")
	if err := cmd.Run(); err == nil {
		t.Fatal("command survived its context")
	}
	waitGone(t, pidFile, 10*time.Second)
}

func TestResolveToolchainRejectsNonGo(t *testing.T) {
	target, err := check.LocalTarget()
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{"/bin/true", "/nonexistent/go", t.TempDir()} {
		if _, err := check.ResolveToolchain(context.Background(), target, bin); err == nil || !strings.Contains(err.Error(), bin) {
			t.Errorf("ResolveToolchain(%s) error = %v, want one naming it", bin, err)
		}
	}
	empty := target.WithEnv("PATH=" + t.TempDir())
	tc, err := check.ResolveToolchain(context.Background(), empty, "")
	if err != nil || tc.Err == nil {
		t.Errorf("no go on PATH: tc.Err = %v, err = %v; want a recorded error", tc.Err, err)
	}
}

func TestResolveToolchainRealSettings(t *testing.T) {
	local, err := check.LocalTarget()
	if err != nil {
		t.Fatal(err)
	}
	goenv := filepath.Join(t.TempDir(), "goenv")
	os.WriteFile(goenv, []byte("GOFLAGS=-mod=mod\n# comment\nbroken line\n"), 0o644)
	tests := []struct {
		name string
		env  []string
		want string
	}{
		// go env refuses to run with an unparsable GOFLAGS: the doctor
		// must still resolve the toolchain, and report the real value.
		{"environment wins", []string{"GOFLAGS=not-a-flag"}, "not-a-flag"},
		{"GOENV file", nil, "-mod=mod"},
	}
	for _, tt := range tests {
		target := *local
		target.Environ = nil
		for _, kv := range local.Environ {
			if !strings.HasPrefix(kv, "GOFLAGS=") && !strings.HasPrefix(kv, "GOENV=") {
				target.Environ = append(target.Environ, kv)
			}
		}
		target.Environ = append(target.Environ, "GOENV="+goenv)
		tc, err := check.ResolveToolchain(context.Background(), target.WithEnv(tt.env...), "")
		if err != nil || tc.Err != nil {
			t.Fatalf("%s: resolve: %v %v", tt.name, err, tc.Err)
		}
		if tc.GOFLAGS != tt.want {
			t.Errorf("%s: GOFLAGS = %q, want %q", tt.name, tc.GOFLAGS, tt.want)
		}
		if tc.Get("GOROOT") == "" || !strings.HasPrefix(tc.Version(), "go1.") {
			t.Errorf("%s: toolchain = %+v", tt.name, tc)
		}
	}
}

func TestResolveToolchainWithoutBuildCache(t *testing.T) {
	local, err := check.LocalTarget()
	if err != nil {
		t.Fatal(err)
	}
	target := *local
	target.Environ = nil
	for _, kv := range local.Environ {
		k, _, _ := strings.Cut(kv, "=")
		if k != "HOME" && k != "GOCACHE" && k != "XDG_CACHE_HOME" {
			target.Environ = append(target.Environ, kv)
		}
	}
	// A HOME-less container: `go env -json` as a whole refuses to run.
	tc, err := check.ResolveToolchain(context.Background(), &target, "")
	if err != nil || tc.Err != nil {
		t.Fatalf("resolve: %v %v", err, tc.Err)
	}
	if tc.Get("GOCACHE") != "off" || tc.Get("GOROOT") == "" {
		t.Errorf("GOCACHE = %q GOROOT = %q, want off and the root", tc.Get("GOCACHE"), tc.Get("GOROOT"))
	}
}
