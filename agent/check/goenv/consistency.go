package goenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/access"
	"github.com/gopatrol/gopatrol/agent/check/toolchain"
)

var envConsistency = check.Check{
	ID:     "env.consistency",
	Title:  "go env paths are absolute and equal to their real paths",
	Source: "1",
	// A relative GOPATH makes `go env` fail; this check explains it, so it
	// runs without go env, on the settings as configured.
	NoToolchain: true,
	Run:         runConsistency,
}

func runConsistency(ctx context.Context, env *check.Env) check.Result {
	t, tc := env.Target, env.Toolchain
	get := tc.Get
	var s *settings
	if tc.Err != nil {
		s = loadSettings(env)
		get = func(k string) string { v, _ := s.get(k); return v }
	}
	type entry struct{ name, path string }
	entries := []entry{{"GOROOT", get("GOROOT")}}
	if get("GOPATH") == "" {
		// SplitList("") is no element at all; an empty GOPATH is a
		// finding of its own (no HOME to default to).
		entries = append(entries, entry{"GOPATH", ""})
	}
	for i, p := range filepath.SplitList(get("GOPATH")) {
		name := "GOPATH"
		if i > 0 {
			name = fmt.Sprintf("GOPATH[%d]", i)
		}
		entries = append(entries, entry{name, p})
	}
	entries = append(entries, entry{"GOMODCACHE", get("GOMODCACHE")}, entry{"GOCACHE", get("GOCACHE")})
	if tc.Err != nil {
		// Unset values have defaults only go env knows; judge what is set.
		entries = slices.DeleteFunc(entries, func(e entry) bool { return e.path == "" })
	}

	ev := map[string]string{}
	var fs []check.Finding
	real := map[string]string{}
	for _, e := range entries {
		switch {
		case e.path == "":
			ev[e.name] = "(empty)"
			if e.name == "GOPATH" {
				fix := "export HOME=<your home> (GOPATH defaults to $HOME/go)"
				if t.Getenv("HOME") != "" {
					// HOME is set, so $HOME/go was refused: it is GOROOT.
					fix = gopathFix(ctx, t, get("GOROOT"))
				}
				fs = append(fs, check.Finding{Status: check.Warn, Summary: "GOPATH is empty: the go command has no place for GOPATH/bin and the default module cache", Fix: fix, Remedy: goenvRemedy(t, fix)})
			}
			continue
		case e.name == "GOCACHE" && e.path == "off":
			ev[e.name] = "off (gocache.writable reports it)"
			continue
		case !filepath.IsAbs(e.path):
			ev[e.name] = e.path
			fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("%s %q is a relative path: it means something else in every directory", e.name, e.path), Fix: relativeFix(ctx, t, s, e.name, e.path)})
			continue
		}
		res, err := t.Resolve(e.path)
		if err == nil {
			err = res.Err()
		}
		r := res.Real
		var dangling *check.DanglingError
		switch {
		case errors.Is(err, os.ErrNotExist) && !errors.As(err, &dangling):
			ev[e.name] = e.path + " (does not exist yet)"
			real[e.name] = e.path
		case err != nil:
			ev[e.name] = e.path + " (" + err.Error() + ")"
			fs = append(fs, check.Finding{Status: check.Warn, Summary: fmt.Sprintf("%s %s cannot be resolved: %v", e.name, e.path, err), Fix: fmt.Sprintf("repair or remove the link, or go env -w %s=<a real directory>", baseName(e.name))})
		case r != filepath.Clean(e.path):
			ev[e.name] = e.path + " -> " + r
			real[e.name] = r
			fs = append(fs, check.Finding{Status: check.Warn, Summary: fmt.Sprintf("%s %s is a link to %s: tools that compare paths see two names for one directory", e.name, e.path, r), Fix: setFix(ctx, t, baseName(e.name), r), Remedy: goenvRemedy(t, setFix(ctx, t, baseName(e.name), r))})
		default:
			ev[e.name] = e.path
			real[e.name] = r
		}
	}
	if root := real["GOROOT"]; root != "" {
		for _, e := range entries {
			if !strings.HasPrefix(e.name, "GOPATH") || real[e.name] == "" {
				continue
			}
			if check.Within(real[e.name], root) {
				fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("%s %s is GOROOT %s or inside it: the go command ignores it and modules land in the Go installation", e.name, e.path, get("GOROOT")), Fix: gopathFix(ctx, t, root), Remedy: goenvRemedy(t, gopathFix(ctx, t, root))})
			}
		}
	}
	return check.Combine("GOROOT, GOPATH, GOMODCACHE and GOCACHE are absolute real paths", fs, ev)
}

func baseName(name string) string { n, _, _ := strings.Cut(name, "["); return n }

func absHint(name string) string {
	switch baseName(name) {
	case "GOPATH":
		return "$HOME/go"
	case "GOMODCACHE":
		return "$HOME/go/pkg/mod"
	case "GOCACHE":
		return "$HOME/.cache/go-build"
	}
	return "<absolute path>"
}

// gopathFix proposes a GOPATH outside GOROOT: $HOME/go is the go command's
// default, but not when Go itself was unpacked there (then it is GOROOT).
func gopathFix(ctx context.Context, t *check.Target, realGOROOT string) string {
	spelled := "$HOME/go"
	if res, err := t.Resolve(filepath.Join(t.Getenv("HOME"), "go")); err == nil && res.Err() == nil && check.Within(res.Real, realGOROOT) {
		spelled = "$HOME/gopath"
	}
	return setFix(ctx, t, "GOPATH", spelled)
}

// setFix is the command that sets key to value for the user's builds:
// `go env -w` writes the GOENV file, so where that file cannot be written
// (a read-only HOME, no HOME at all) the fix is an export for the shell
// profile instead.
func setFix(ctx context.Context, t *check.Target, key, value string) string {
	if v, ok := t.LookupEnv(key); ok && v != "" {
		// The environment overrides the GOENV file: go env -w would
		// change nothing the builds see.
		return "export " + key + "=" + value + " (" + key + " is set in the environment, which overrides go env -w)"
	}
	goenv := toolchain.DefaultGOENV(t)
	if goenv == "" || goenv == "off" {
		return "export " + key + "=" + value + " (the go command has no GOENV file to write)"
	}
	if err := access.Writable(ctx, t, t.NearestExisting(filepath.Dir(goenv))); err != nil {
		return "export " + key + "=" + value + " (go env -w cannot write " + goenv + ")"
	}
	return "go env -w " + key + "=" + value
}

// relativeFix makes a relative setting absolute. A value from the GOENV
// file is edited there, line by line: `go env -w` reads that file first
// and fails on the very value it would replace (a GOPATH of "~/go" makes
// it exit 2), so a go env -w fix could never run.
func relativeFix(ctx context.Context, t *check.Target, s *settings, name, value string) string {
	key := baseName(name)
	abs := absHint(name)
	if rest, ok := strings.CutPrefix(value, "~/"); ok && t.Getenv("HOME") != "" {
		abs = filepath.Join(t.Getenv("HOME"), rest)
	}
	if s != nil {
		if _, from := s.get(key); from != "" && from == s.goenv {
			if n := lineOf(t, s.goenv, key); n > 0 {
				if strings.HasPrefix(abs, "$") {
					abs = os.Expand(abs, t.Getenv)
				}
				return fmt.Sprintf("edit %s line %d: replace %q with %q", s.goenv, n, value, abs)
			}
		}
	}
	return setFix(ctx, t, key, abs) + " (an absolute path)"
}

// lineOf is the number of the line of a go env file that sets key (the
// last one, which wins), or 0.
func lineOf(t *check.Target, path, key string) int {
	data, err := check.ReadFile(t.Path(path), 1<<20)
	if err != nil {
		return 0
	}
	found := 0
	for i, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, key+"=") {
			found = i + 1
		}
	}
	return found
}
