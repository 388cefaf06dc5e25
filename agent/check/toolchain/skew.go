package toolchain

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/gopatrol/gopatrol/agent/check"
)

var versionSkew = check.Check{
	ID:     "go.version-skew",
	Title:  "go, GOROOT/bin/go, the compiler and GOROOT/VERSION agree",
	Source: "2.2",
	// It runs `go tool compile`, whose answer depends only on files the
	// proofs' fingerprint holds (the go binary, GOROOT/bin/go, GOTOOLDIR,
	// GOROOT/VERSION, go env).
	Proves: true,
	Run:    runVersionSkew,
}

func runVersionSkew(ctx context.Context, env *check.Env) check.Result {
	t, tc := env.Target, env.Toolchain
	goroot := tc.Get("GOROOT")

	// The version each part claims. `go version` prints the version in
	// the binary's build info, so that is read in-process; the compiler is
	// run, because which compiler `go tool` picks is what is under test.
	type part struct{ name, where, version string }
	bin := readBinInfo(t, tc.Go)
	goPath := tc.Go
	if w, ok := workingWrapper(t, tc, bin); ok {
		// A wrapper has no version of its own: the go it runs speaks.
		bin, goPath = w, tc.Go+", a wrapper of "+w.Path
	}
	parts := []part{{"go version", goPath, bin.Version}}
	rootGo := filepath.Join(goroot, "bin", "go")
	if rb := readBinInfo(t, rootGo); rb.IsGo() {
		parts = append(parts, part{"$GOROOT/bin/go version", rootGo, rb.Version})
	} else {
		parts = append(parts, part{"$GOROOT/bin/go version", rootGo, ""})
	}
	out, err := env.Go(ctx, []string{"GOTOOLCHAIN=local", "GOFLAGS="}, "tool", "compile", "-V=full")
	compileVer := ""
	if err == nil {
		compileVer = compilerVersion(string(out))
	}
	tool := filepath.Join(goroot, "pkg", "tool", tc.Get("GOHOSTOS")+"_"+tc.Get("GOHOSTARCH"), "compile")
	parts = append(parts, part{"go tool compile -V=full", tool, compileVer})
	vf := filepath.Join(goroot, "VERSION")
	rootVer, verErr := readVersionFile(t, goroot)
	parts = append(parts, part{"$GOROOT/VERSION", vf, rootVer})

	r := check.Passf("all parts say %s", bin.Version)
	for _, p := range parts {
		v := p.version
		if v == "" {
			v = "(none)"
		}
		r = r.With(p.name, v+" ("+p.where+")")
	}
	if err != nil {
		r = r.With("error", err.Error()).
			WithFix("the compiler of GOROOT %s cannot run; reinstall Go from the release archive", goroot)
		return restate(r, check.Fail, "`go tool compile -V=full` failed: %v", err)
	}

	var diff []string
	for _, p := range parts[1:] {
		if p.version == "" {
			if p.name == "$GOROOT/VERSION" && verErr != nil {
				// Development trees have no VERSION file; nothing to compare.
				r = r.With("$GOROOT/VERSION", "(none: "+verErr.Error()+")")
				continue
			}
			if p.name == "$GOROOT/bin/go version" {
				diff = append(diff, fmt.Sprintf("%s is missing or not a Go binary", p.where))
				continue
			}
		}
		if p.version != "" && p.version != bin.Version {
			diff = append(diff, fmt.Sprintf("%s says %s (%s)", p.name, p.version, p.where))
		}
	}
	if len(diff) == 0 {
		return r
	}
	r = r.WithFix("use one Go installation: unset GOROOT so that %s uses its own root, or reinstall %s from one release archive", tc.Go, goroot)
	return restate(r, check.Fail, "%s is %s but %s", tc.Go, bin.Version, strings.Join(diff, ", "))
}

// compilerVersion takes "compile version go1.26.8" (with -V=full possibly
// followed by " X:exp,...") and returns go1.26.8.
func compilerVersion(out string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	_, v, ok := strings.Cut(line, " version ")
	if !ok {
		return ""
	}
	if strings.HasPrefix(v, "devel ") {
		return v
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}

// restate gives r a new status and summary, keeping its evidence and fix.
func restate(r check.Result, s check.Status, format string, a ...any) check.Result {
	r.Status, r.Summary = s, fmt.Sprintf(format, a...)
	return r
}
