package toolchain

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gopatrol/gopatrol/agent/check"
)

var goBinary = check.Check{
	ID:          "go.binary",
	Title:       "the go on PATH is a real Go binary",
	Source:      "1",
	NoToolchain: true,
	Run:         runGoBinary,
}

func runGoBinary(ctx context.Context, env *check.Env) check.Result {
	t := env.Target
	entries, relative := scanPath(t)
	ev := map[string]string{}
	var fs []check.Finding
	if len(relative) > 0 {
		ev["path.relative"] = strings.Join(relative, ":")
		fs = append(fs, check.Finding{Status: check.Warn, Summary: fmt.Sprintf("PATH has relative entries %q: which go runs depends on the current directory", relative), Fix: "export PATH=" + strings.Join(slices.DeleteFunc(filepath.SplitList(t.Getenv("PATH")), func(e string) bool { return slices.Contains(relative, e) }), ":") + " (in your shell profile: the relative entries removed)"})
	}

	fs = append(fs, leftoverEntries(t)...)

	var infos []binInfo
	for _, e := range entries {
		switch {
		case e.Err != nil:
			ev["go.dangling"] = strings.TrimPrefix(ev["go.dangling"]+", ", ", ") + e.Path
			fs = append(fs, check.Finding{Status: check.Warn, Summary: fmt.Sprintf("%s on PATH is a dangling link, the shell skips it", e.Path), Fix: fmt.Sprintf("rm %s, or point it at a Go root's bin/go", e.Path),
				Remedy: &check.Remedy{Kind: check.RemoveLink, Root: e.Path, Paths: []string{e.Path}}})
		case e.NoExec:
			ev["go.not-executable"] = strings.TrimPrefix(ev["go.not-executable"]+", ", ", ") + e.Path
		default:
			bi := readBinInfo(t, e.Path)
			infos = append(infos, bi)
		}
	}
	for i, bi := range infos {
		ev["go."+strconv.Itoa(i+1)] = bi.String()
	}

	tc := env.Toolchain
	if len(infos) == 0 {
		r := check.Failf("no go on PATH").With("PATH", t.Getenv("PATH")).
			WithFix("install Go and add its bin directory to PATH, e.g. export PATH=$PATH:/usr/local/go/bin")
		if tc != nil && tc.Err != nil {
			r = r.With("error", tc.Err.Error())
		}
		for k, v := range ev {
			r = r.With(k, v)
		}
		return r
	}

	first := infos[0]
	var real *binInfo
	for i := range infos[1:] {
		if infos[1+i].IsGo() {
			real = &infos[1+i]
			break
		}
	}
	if w, ok := workingWrapper(t, tc, first); ok {
		// Version managers' shims and SDK wrappers are scripts that exec
		// a real Go root's go: builds work through them.
		ev["go.first"] = first.Path
		ev["go.wrapper"] = fmt.Sprintf("%s runs %s (%s)", first.Path, w.Path, w.Version)
		first = w
	}
	if !first.IsGo() {
		what := "is not a Go binary"
		if first.Script {
			what = "is a script that shadows the go binary"
		} else if first.Err == nil {
			what = fmt.Sprintf("is a Go program of %s, not the go command", first.Main)
		}
		msg := fmt.Sprintf("the first go on PATH, %s, %s", first.Path, what)
		fix := fmt.Sprintf("remove or rename %s, or put a Go root's bin first on PATH", first.Path)
		if real != nil {
			msg += fmt.Sprintf("; the real go %s (%s) comes later on PATH", real.Path, real.Version)
			fix = fmt.Sprintf("export PATH=%s:$PATH (in your shell profile, so that %s runs), or remove or rename %s", dirOf(real.Path), real.Path, first.Path)
			ev["go.real"] = real.Path
		}
		ev["go.first"] = first.Path
		fs = append(fs, check.Finding{Status: check.Fail, Summary: msg, Fix: fix})
	}

	versions := map[string][]string{}
	var order []string
	for _, bi := range infos {
		if !bi.IsGo() {
			continue
		}
		if _, ok := versions[bi.Version]; !ok {
			order = append(order, bi.Version)
		}
		versions[bi.Version] = append(versions[bi.Version], bi.Path)
	}
	if len(order) > 1 {
		var parts []string
		for _, v := range order {
			parts = append(parts, v+" at "+strings.Join(versions[v], ", "))
		}
		fs = append(fs, check.Finding{Status: check.Warn, Summary: "the go binaries on PATH differ in version: " + strings.Join(parts, "; "), Fix: fmt.Sprintf("keep only <the Go you mean> on PATH, or make sure %s is the one you mean", firstGo(infos))})
	}

	if tc != nil && tc.Err != nil && first.IsGo() {
		// tc.Err wraps ErrNotGo ("not a Go toolchain binary"), which the
		// build info just disproved: say only what the go command said.
		why := strings.TrimPrefix(tc.Err.Error(), check.ErrNotGo.Error()+": ")
		ev["error"] = why
		fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("%s is the go command (%s), but `go env` fails: %s", first.Path, first.Version, why), Fix: "run `go env` to see the error, then correct <the setting it names> (GOROOT, the GOENV file or the environment)"})
	}
	if tc != nil && tc.Err == nil && tc.Go != first.Path && ev["go.wrapper"] == "" {
		ev["go.checked"] = tc.Go + " (--go)"
	}
	return check.Combine(fmt.Sprintf("%s is the go command (%s)", first.Path, first.Version), fs, ev)
}

func firstGo(infos []binInfo) string {
	for _, bi := range infos {
		if bi.IsGo() {
			return bi.Path
		}
	}
	return "go"
}

func dirOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// workingWrapper reports whether first, a script or another program
// rather than the go command, is a wrapper that works: the toolchain was
// resolved through it (`go env` answered) and the GOROOT it reported
// holds the go command of the version it reported. It returns that go.
func workingWrapper(t *check.Target, tc *check.Toolchain, first binInfo) (binInfo, bool) {
	if first.IsGo() || tc == nil || tc.Err != nil || tc.Go != first.Path || tc.Get("GOROOT") == "" {
		return binInfo{}, false
	}
	real := readBinInfo(t, filepath.Join(tc.Get("GOROOT"), "bin", "go"))
	if !real.IsGo() || real.Version != tc.Version() {
		return binInfo{}, false
	}
	return real, true
}
