package module

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/mod/module"

	"github.com/gopatrol/gopatrol/agent/check"
)

var verifyCheck = check.Check{
	ID:     "module.verify",
	Title:  "modules in the module cache are as they were downloaded (go mod verify)",
	Source: "3.1",
	// Hashing every dependency of a large module takes seconds.
	Timeout: time.Minute,
	Run:     runVerify,
}

// hasGoMod reports whether dir (a target path) holds a go.mod.
func hasGoMod(t *check.Target, dir string) bool {
	fi, err := os.Stat(t.Path(filepath.Join(dir, "go.mod")))
	return err == nil && fi.Mode().IsRegular()
}

// probeEnv keeps the probes from switching toolchains (a download, not a
// verification); module.toolchain reports go.mod lines the local toolchain
// cannot honour.
var probeEnv = []string{"GOTOOLCHAIN=local"}

// verifyLine is one complaint of `go mod verify` (cmd/go/internal/modcmd
// verify.go): "<path> <version>: <what>".
var verifyLine = regexp.MustCompile(`^([^\s:]+) (v\d\S*): (?:(zip has been modified|dir has been modified|missing ziphash)(?: \((.*)\)|: (.*))?|(.*))$`)

func runVerify(ctx context.Context, env *check.Env) check.Result {
	t := env.Target
	if !hasGoMod(t, t.Dir) {
		return check.Skipf("no go.mod in %s: not a module (run gopatrol check -C <module dir>)", t.Dir).With("dir", t.Dir)
	}
	out, err := env.Go(ctx, probeEnv, "mod", "verify")
	text := strings.TrimSpace(string(out))
	if err == nil {
		return check.Passf("%s", check.FirstLine(text)).With("dir", t.Dir).With("go mod verify", check.FirstLine(text))
	}
	if ctx.Err() != nil {
		return check.Errorf("go mod verify did not finish: %v", ctx.Err()).With("dir", t.Dir)
	}

	modcache := env.Toolchain.Get("GOMODCACHE")
	if r, ok := rootCause(env, text); ok {
		return r.With("dir", t.Dir).With("go mod verify", text)
	}
	var bad []string
	var fixes []string
	r := check.Result{Status: check.Fail}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		m := verifyLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		path, vers, what, where := m[1], m[2], m[3], m[4]+m[5]+m[6]
		key := path + "@" + vers
		switch what {
		case "zip has been modified":
			what = "the downloaded zip was changed"
		case "dir has been modified":
			what = "the extracted tree was changed"
		case "missing ziphash":
			what = "the recorded hash is missing"
		default:
			what = "could not be verified"
		}
		r = r.With(key, fmt.Sprintf("%s: %s", what, where))
		bad = append(bad, fmt.Sprintf("%s (%s)", key, what))
		fixes = append(fixes, redownload(modcache, path, vers))
	}
	r = r.With("dir", t.Dir).With("go mod verify", text)
	if len(bad) == 0 {
		// Not a verification verdict: the module graph did not load.
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return check.Errorf("could not run go mod verify: %v", err).With("dir", t.Dir)
		}
		r.Summary = fmt.Sprintf("go mod verify failed before verifying: %s", check.FirstLine(text))
		return r.WithFix("run `go mod verify` in %s and fix what it reports first (often `go mod download` or `go mod tidy`)", t.Dir)
	}
	r.Summary = fmt.Sprintf("%d module(s) changed in the module cache since download: %s", len(bad), strings.Join(bad, ", "))
	fix := fmt.Sprintf("re-download them: %s; or start over with `go clean -modcache`", strings.Join(fixes, "; "))
	if env.Toolchain.Get("GOPROXY") == "off" {
		// go mod download would fail the same way it does for missing
		// modules: which proxy to use is the person's choice.
		fix = "GOPROXY=off forbids downloads: export GOPROXY=<your module proxy>,direct first, then " + fix
	}
	return r.WithFix("%s", fix)
}

// redownload is the shell command that removes one module from the cache
// (the extracted tree is read-only) and fetches it again.
func redownload(modcache, path, vers string) string {
	esc, err1 := module.EscapePath(path)
	ev, err2 := module.EscapeVersion(vers)
	if err1 != nil || err2 != nil || modcache == "" {
		return "go clean -modcache"
	}
	dir := filepath.Join(modcache, esc+"@"+ev)
	dl := filepath.Join(modcache, "cache", "download", esc, "@v", ev)
	return fmt.Sprintf("chmod -R u+w %s; rm -rf %s %s.*; go mod download %s@%s", dir, dir, dl, path, vers)
}

// rootCause recognises a `go mod verify` that failed because of something
// other than the modules' content, so that module.verify does not claim
// modules changed since download (and advise deleting cache paths that do
// not exist) when nothing was ever downloaded:
//
//   - the module cache cannot be read or written by the build user: a
//     consequence of what modcache.writable reports, so the result says so
//     (evidence "follows") and carries no fix of its own;
//   - GOPROXY=off with modules missing from the cache: no check owns that
//     deliberate setting (proxy.protocol skips it), so module.verify is the
//     root cause and names the setting.
func rootCause(env *check.Env, text string) (check.Result, bool) {
	modcache := env.Toolchain.Get("GOMODCACHE")
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		switch {
		case modcache != "" && strings.Contains(line, modcache) && strings.HasSuffix(line, "permission denied"):
			return check.Failf("go mod verify cannot use the module cache %s as %s: %s; this follows from modcache.writable, fix that first", modcache, env.Target.UserName(), line).
				With("follows", "modcache.writable").With("GOMODCACHE", modcache), true
		case strings.Contains(line, "module lookup disabled by GOPROXY=off"):
			return check.Failf("modules missing from the module cache cannot be downloaded: GOPROXY=off forbids it (%s)", line).
				With("GOPROXY", "off (the go command's setting; proxy.protocol skips it)").
				WithFix("export GOPROXY=<your module proxy>,direct and run go mod download in %s, or copy the modules into %s", env.Target.Dir, modcache), true
		}
	}
	return check.Result{}, false
}
