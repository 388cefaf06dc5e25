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
	if tc.Err != nil {
		s := loadSettings(env)
		get = func(k string) string { v, _ := s.get(k); return v }
	}
	type entry struct{ name, path string }
	entries := []entry{{"GOROOT", get("GOROOT")}}
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
				fs = append(fs, check.Finding{Status: check.Warn, Summary: "GOPATH is empty: the go command has no place for GOPATH/bin and the default module cache", Fix: "export HOME=<your home> (GOPATH defaults to $HOME/go), or go env -w GOPATH=$HOME/go"})
			}
			continue
		case e.name == "GOCACHE" && e.path == "off":
			ev[e.name] = "off (gocache.writable reports it)"
			continue
		case !filepath.IsAbs(e.path):
			ev[e.name] = e.path
			fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("%s %q is a relative path: it means something else in every directory", e.name, e.path), Fix: fmt.Sprintf("go env -w %s=%s (an absolute path)", baseName(e.name), absHint(e.name))})
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
			fs = append(fs, check.Finding{Status: check.Warn, Summary: fmt.Sprintf("%s %s is a link to %s: tools that compare paths see two names for one directory", e.name, e.path, r), Fix: fmt.Sprintf("go env -w %s=%s", baseName(e.name), r)})
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
				fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("%s %s is GOROOT %s or inside it: the go command ignores it and modules land in the Go installation", e.name, e.path, get("GOROOT")), Fix: "go env -w GOPATH=$HOME/go"})
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
