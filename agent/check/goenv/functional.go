package goenv

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gopatrol/gopatrol/agent/check"
)

var envFunctional = check.Check{
	ID:     "env.functional",
	Title:  "go run builds and runs a program; the standard library lists",
	Source: "1",
	// A cold build cache compiles the runtime first; a warm one takes
	// tens of milliseconds.
	Timeout:    time.Minute,
	FillsCache: true,
	Proves:     true,
	Run:        runFunctional,
}

const (
	probeOut  = "gopatrol-ok"
	probeMain = "package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"" + probeOut + "\\n\") }\n"
	// go 1.21: any toolchain that knows GOTOOLCHAIN builds it as is.
	probeMod = "module gopatrol.example/probe\n\ngo 1.21\n"
)

// probeEnv isolates the probe from settings that env.config judges, so a
// bad GOFLAGS or a workspace above /tmp is reported once, there.
var probeEnv = []string{"GOTOOLCHAIN=local", "GOFLAGS=", "GOWORK=off", "GO111MODULE=on", "GOPROXY=off"}

func runFunctional(ctx context.Context, env *check.Env) check.Result {
	t, tc := env.Target, env.Toolchain
	tmp := t.Getenv("TMPDIR")
	if tmp == "" {
		tmp = "/tmp"
	}
	workRoot, workVar := tc.Get("GOTMPDIR"), "GOTMPDIR"
	if workRoot == "" {
		workRoot, workVar = tmp, "TMPDIR"
	}
	ev := map[string]string{workVar: workRoot}

	scratch, err := t.NewScratch(tmp, "gopatrol-run-")
	if err == nil {
		defer scratch.Remove()
		err = scratch.Write(map[string]string{"go.mod": probeMod, "main.go": probeMain})
	}
	if err != nil {
		return check.Errorf("create the probe module: %v", err).With("TMPDIR", tmp).
			WithFix("make %s writable for %s", tmp, t.UserName())
	}
	mod := scratch.Dir
	ev["module"] = mod
	// The go commands keep their work directory inside the module, so a
	// go killed at the timeout leaves no go-build* behind; GOTMPDIR itself
	// is probed by probeExec doing what the go command does there.
	work := filepath.Join(mod, "tmp")
	if err := os.Mkdir(t.Path(work), 0o755); err != nil {
		return check.Errorf("create the probe's work directory: %v", err)
	}
	if t.AsOther() {
		if err := os.Lchown(t.Path(work), int(t.User.UID), int(t.User.GID)); err != nil {
			return check.Errorf("create the probe's work directory: %v", err)
		}
	}
	in := *t
	in.Dir = mod
	modTarget := in.WithEnv(append(probeEnv, "GOTMPDIR="+work)...)

	var (
		wg                sync.WaitGroup
		runOut            check.Output
		listOut           []byte
		runErr, listErr   error
		execFinding       *check.Finding
		runTook, listTook time.Duration
		start             = time.Now()
	)
	// -trimpath keeps the build independent of the temporary directory,
	// so the linked program comes from the build cache after the first
	// run; exec from the work directory is then probed separately.
	wg.Go(func() {
		runOut, runErr = check.Run(modTarget.Command(ctx, tc.Go, "run", "-trimpath", "."))
		runTook = time.Since(start)
	})
	wg.Go(func() {
		listOut, listErr = check.CombinedOutput(modTarget.Command(ctx, tc.Go, "list", "-e", "-find", "-f", "{{if .Error}}ERR {{.ImportPath}}: {{.Error}}{{else}}{{.ImportPath}}{{end}}", "std"))
		listTook = time.Since(start)
	})
	wg.Go(func() { execFinding = probeExec(ctx, t, workRoot, workVar) })
	wg.Wait()
	if ctx.Err() != nil {
		return check.Errorf("probes did not finish: %v", ctx.Err())
	}

	var fs []check.Finding
	// The program's output is its stdout. The go command's own warnings
	// ("warning: both GOPATH and GOROOT are the same directory") go to
	// stderr: they are its words, not a wrapper's, and env.consistency
	// judges what they are about.
	got := strings.TrimSpace(string(runOut.Stdout))
	if runErr != nil {
		got = strings.TrimSpace(string(runOut.Stdout) + string(runOut.Stderr))
	} else if w := strings.TrimSpace(string(runOut.Stderr)); w != "" {
		ev["go run stderr"] = check.FirstLines(w, 3, " | ")
	}
	ev["go run"] = fmt.Sprintf("%q in %s", check.FirstLines(got, 3, " | "), runTook.Round(time.Millisecond))
	switch {
	case runErr != nil:
		fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("go run of a minimal program in %s failed: %s", mod, check.FirstLines(got, 2, " | ")), Fix: "run `go run .` in a new module to see the whole error"})
	case got != probeOut:
		fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("go run printed %q, want %q", check.FirstLines(got, 3, " | "), probeOut), Fix: "something wraps or rewrites program output; check GOFLAGS=-exec and the go binary (go.binary)"})
	}

	lines := strings.Split(strings.TrimSpace(string(listOut)), "\n")
	var broken []string
	for _, l := range lines {
		if strings.HasPrefix(l, "ERR ") {
			broken = append(broken, strings.TrimPrefix(l, "ERR "))
		}
	}
	ev["go list std"] = fmt.Sprintf("%d packages in %s", len(lines), listTook.Round(time.Millisecond))
	switch {
	case listErr != nil:
		fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("go list std failed: %s", check.FirstLines(string(listOut), 2, " | ")), Fix: fmt.Sprintf("the standard library under %s/src is damaged; reinstall Go", tc.Get("GOROOT"))})
	case len(broken) > 0:
		ev["go list std.errors"] = check.FirstLines(strings.Join(broken, "\n"), 5, " | ")
		fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("%d standard packages do not load: %s", len(broken), broken[0]), Fix: fmt.Sprintf("reinstall Go; %s/src is damaged", tc.Get("GOROOT"))})
	case !contains(lines, "runtime") || !contains(lines, "fmt"):
		fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("go list std found %d packages, without runtime or fmt", len(lines)), Fix: fmt.Sprintf("reinstall Go; %s/src is incomplete", tc.Get("GOROOT"))})
	}
	if execFinding != nil {
		fs = append(fs, *execFinding)
	}
	return check.Combine(fmt.Sprintf("go run printed %s and go list std found %d packages", probeOut, len(lines)), fs, ev)
}

// probeExec does what the go command does with its work root, as the build
// user: create a directory there, write a program into it and execute it
// (go test always, go run for a program not yet cached). A noexec mount
// refuses the last step. The shell only sequences the steps; the directory
// is named here so that it is removed even when the probe is killed.
func probeExec(ctx context.Context, t *check.Target, root, rootVar string) *check.Finding {
	if _, err := os.Stat(t.Path("/bin/sh")); err != nil {
		return nil // nothing to run a probe with; go run still tells
	}
	dir := filepath.Join(root, fmt.Sprintf("gopatrol-exec-%d-%d", os.Getpid(), rand.Uint32()))
	defer os.RemoveAll(t.Path(dir))
	const script = `mkdir -m 700 "$1" || exit 90
printf '#!/bin/sh\necho %s\n' > "$1/probe" && chmod 700 "$1/probe" || exit 91
exec "$1/probe"`
	out, err := check.CombinedOutput(t.Command(ctx, "/bin/sh", "-c", fmt.Sprintf(script, probeOut), "sh", dir))
	if err == nil && strings.TrimSpace(string(out)) == probeOut {
		return nil
	}
	var ee *exec.ExitError
	code := -1
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	switch code {
	case 90, 91:
		return &check.Finding{Status: check.Fail, Summary: fmt.Sprintf("%s cannot create files in %s=%s: %s", t.UserName(), rootVar, root, check.FirstLine(string(out))), Fix: fmt.Sprintf("make %s writable for %s, or export %s=<a writable directory>", root, t.UserName(), rootVar)}

	}
	var st unix.Statfs_t
	if unix.Statfs(t.Path(root), &st) == nil && st.Flags&unix.ST_NOEXEC != 0 {
		return &check.Finding{Status: check.Fail, Summary: fmt.Sprintf("%s=%s is on a noexec mount: go test and the first go run of a program fail with \"fork/exec %s/go-build.../exe/...: permission denied\"", rootVar, root, root), Fix: noexecFix(t, rootVar, root)}

	}
	return &check.Finding{Status: check.Fail, Summary: fmt.Sprintf("a program in %s=%s does not run (%v): %s", rootVar, root, err, check.FirstLine(string(out))), Fix: fmt.Sprintf("export %s=<a directory on an exec mount>", rootVar)}

}

func noexecFix(t *check.Target, rootVar, root string) string {
	if _, ok := t.LookupEnv("GOTMPDIR"); ok {
		// The environment overrides go env -w: change it there.
		return fmt.Sprintf("export GOTMPDIR=/var/tmp (any directory on a mount without noexec), or remount the filesystem of %s=%s with exec", rootVar, root)
	}
	return fmt.Sprintf("mkdir -p $HOME/.cache/go-tmp && go env -w GOTMPDIR=$HOME/.cache/go-tmp (a directory on a mount without noexec), or remount the filesystem of %s=%s with exec", rootVar, root)
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}
