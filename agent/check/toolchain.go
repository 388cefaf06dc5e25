package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Toolchain is the Go toolchain of the target, resolved once per run so that
// fourteen checks do not each pay for `go env`.
type Toolchain struct {
	// Go is the go binary the checks use (--go, or the first go on PATH),
	// in the target's namespace.
	Go string
	// Env is `go env -json` run with GOTOOLCHAIN=local and GOFLAGS= so
	// that a broken GOFLAGS or a toolchain switch cannot stop the doctor
	// from seeing the rest.
	Env map[string]string
	// GOFLAGS and GOTOOLCHAIN are the real settings the user's builds get,
	// from the environment, else the GOENV file, else GOROOT/go.env.
	GOFLAGS     string
	GOTOOLCHAIN string
	// Err is why the toolchain could not be resolved; checks that need
	// it are skipped then and go.binary says why.
	Err error
	// ColdCache says the build cache has never seen a build finish
	// (ColdCacheOf): the first go build compiles the standard library,
	// which takes tens of seconds, and the runner's timeouts allow for it.
	ColdCache bool
}

// ColdCacheOf reports whether the build cache gocache (a path of the
// target) is cold: missing, or without the trim.txt that the go command
// writes when it trims the cache at the end of its first build. `go env`
// alone creates the cache's directories, so their presence says nothing.
func ColdCacheOf(t *Target, gocache string) bool {
	if !filepath.IsAbs(gocache) {
		return false // "off" or broken: gocache.writable reports it
	}
	_, err := os.Stat(t.Path(filepath.Join(gocache, "trim.txt")))
	return err != nil
}

// Get returns a `go env` value.
func (tc *Toolchain) Get(key string) string { return tc.Env[key] }

// Version is the toolchain's version, e.g. "go1.26.8".
func (tc *Toolchain) Version() string { return tc.Env["GOVERSION"] }

// ErrNotGo says a binary did not answer like the go command.
var ErrNotGo = errors.New("not a Go toolchain binary")

// ErrNoAnswer says the go command did not answer within its deadline;
// running it again would only wait again.
var ErrNoAnswer = errors.New("no answer")

// ResolveToolchain finds the go binary (goBin, or the first go on the
// target's PATH) and runs `go env -json` once. An error for an explicit goBin
// that is not a Go binary is returned; any other failure is recorded in
// Toolchain.Err so that the checks can report it.
func ResolveToolchain(ctx context.Context, t *Target, goBin string) (*Toolchain, error) {
	tc := &Toolchain{Go: goBin}
	if goBin == "" {
		found := t.LookPath("go")
		if len(found) == 0 {
			tc.Err = fmt.Errorf("no go binary on PATH=%s", t.Getenv("PATH"))
			return tc, nil
		}
		tc.Go = found[0]
	} else {
		abs, err := filepath.Abs(goBin)
		if err != nil {
			return nil, err
		}
		tc.Go = abs
		fi, err := os.Stat(t.Path(abs))
		if err != nil {
			return nil, fmt.Errorf("--go %s: %w", goBin, err)
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("--go %s: is a directory, want the go binary (for example %s)", goBin, filepath.Join(goBin, "bin", "go"))
		}
	}
	env, err := goEnv(ctx, t, tc.Go)
	if err != nil {
		if goBin != "" {
			return nil, fmt.Errorf("--go %s: %w", goBin, err)
		}
		tc.Err = err
		return tc, nil
	}
	tc.Env = env
	tc.ColdCache = ColdCacheOf(t, env["GOCACHE"])
	tc.GOFLAGS = realSetting(t, env, "GOFLAGS")
	tc.GOTOOLCHAIN = realSetting(t, env, "GOTOOLCHAIN")
	return tc, nil
}

// goEnvVars are the variables asked for by name when `go env -json` fails
// as a whole: without a locatable build cache (a HOME-less container) the
// go command refuses to print everything, yet these still resolve, and
// gocache.writable can then say what is wrong instead of the doctor
// giving up on the toolchain.
// (The CGO_*FLAGS and PKG_CONFIG values need the cache too, so they are
// left out.)
var goEnvVars = []string{
	"AR", "CC", "CGO_ENABLED", "CXX",
	"GO111MODULE", "GOARCH", "GOAUTH", "GOBIN", "GOCACHE", "GOCACHEPROG", "GODEBUG", "GOENV", "GOEXE",
	"GOEXPERIMENT", "GOFIPS140", "GOFLAGS", "GOHOSTARCH", "GOHOSTOS", "GOINSECURE", "GOMOD", "GOMODCACHE",
	"GONOPROXY", "GONOSUMDB", "GOOS", "GOPATH", "GOPRIVATE", "GOPROXY", "GOROOT", "GOSUMDB", "GOTELEMETRY",
	"GOTMPDIR", "GOTOOLCHAIN", "GOTOOLDIR", "GOVCS", "GOVERSION", "GOWORK",
}

// GoEnvTimeout bounds each `go env -json` that ResolveToolchain runs when
// its context has no earlier deadline: a wrapper script that hangs first on
// PATH is what the doctor exists to diagnose, so it must not hang the doctor.
const GoEnvTimeout = 10 * time.Second

// goEnvTimeout is GoEnvTimeout, shortened by tests.
var goEnvTimeout = GoEnvTimeout

func goEnv(ctx context.Context, t *Target, goBin string) (map[string]string, error) {
	limit := goEnvTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < limit {
		limit = time.Until(d)
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	env, err := goEnvJSON(ctx, t, goBin)
	if err == nil {
		return env, nil
	}
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return nil, fmt.Errorf("`%s env` interrupted: %w", goBin, ctx.Err())
	case ctx.Err() != nil:
		return nil, hungGoEnv(t, goBin, limit)
	}
	if env, err2 := goEnvJSON(ctx, t, goBin, goEnvVars...); err2 == nil {
		return env, nil
	}
	return nil, err
}

// hungGoEnv is the diagnosis of a `go env` that did not answer: the go on
// PATH is often a wrapper script, and its first line says which.
func hungGoEnv(t *Target, goBin string, limit time.Duration) error {
	what := "did not exit"
	if head, err := t.ReadHead(goBin, 128); err == nil {
		if line, ok := strings.CutPrefix(FirstLine(string(head)), "#!"); ok {
			what = fmt.Sprintf("is a script (#!%s) that did not exit; run it by hand to see where it waits", strings.TrimSpace(line))
		} else if strings.HasPrefix(string(head), "\x7fELF") {
			what = "is an ELF binary that did not exit; run `" + goBin + " env` by hand"
		}
	}
	return &noAnswerError{fmt.Sprintf("`go env` did not answer within %s: %s %s", limit.Round(time.Millisecond), goBin, what)}
}

// noAnswerError is a go binary that hung: both ErrNotGo (it did not act
// like the go command) and ErrNoAnswer, with a message that says only what
// happened.
type noAnswerError struct{ msg string }

func (e *noAnswerError) Error() string { return e.msg }

func (e *noAnswerError) Is(target error) bool { return target == ErrNotGo || target == ErrNoAnswer }

func goEnvJSON(ctx context.Context, t *Target, goBin string, vars ...string) (map[string]string, error) {
	cmd := t.WithEnv("GOTOOLCHAIN=local", "GOFLAGS=").Command(ctx, goBin, append([]string{"env", "-json"}, vars...)...)
	out, err := Run(cmd)
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("%w: `%s env -json` failed: %s", ErrNotGo, goBin, FirstLine(string(out.Stderr)))
		}
		return nil, fmt.Errorf("%w: run %s: %v", ErrNotGo, goBin, err)
	}
	if out.Cut != "" {
		return nil, fmt.Errorf("%w: `%s env -json` printed too much (%s)", ErrNotGo, goBin, out.Cut)
	}
	env := map[string]string{}
	if err := json.Unmarshal(out.Stdout, &env); err != nil || env["GOROOT"] == "" {
		return nil, fmt.Errorf("%w: `%s env -json` printed no Go environment", ErrNotGo, goBin)
	}
	return env, nil
}

// realSetting finds the value of key that the go command would use: the
// process environment wins over the GOENV file, which wins over
// $GOROOT/go.env. Like cmd/go's cfg.Getenv, an empty variable counts as
// unset (GOFLAGS= does not hide a GOFLAGS line of the GOENV file).
func realSetting(t *Target, env map[string]string, key string) string {
	if v, ok := t.LookupEnv(key); ok && v != "" {
		return v
	}
	if v, ok := ReadGoEnvFile(t.Path(env["GOENV"]))[key]; ok {
		return v
	}
	if v, ok := ReadGoEnvFile(t.Path(filepath.Join(env["GOROOT"], "go.env")))[key]; ok {
		return v
	}
	return ""
}

// ReadGoEnvFile parses a go env file (the GOENV file or GOROOT/go.env)
// exactly as cmd/go's readEnvFile does: lines split at \n, a line counts
// when it starts with A-Z and holds an =, the key is what precedes the
// first = and the value what follows it, untrimmed; a later line wins.
// Other lines are left out (env.config reports them). Only the first
// maxGoEnvFile bytes are read: the go command's own files are tiny.
func ReadGoEnvFile(path string) map[string]string {
	data, err := ReadFile(path, maxGoEnvFile)
	if err != nil {
		return nil
	}
	m := map[string]string{}
	for line := range strings.SplitSeq(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && line[0] >= 'A' && line[0] <= 'Z' {
			m[k] = v
		}
	}
	return m
}

// maxGoEnvFile bounds the read of a go env file.
const maxGoEnvFile = 1 << 20

// FirstGOPATH is the first non-empty element of a GOPATH list: where the
// go command puts GOPATH/bin and the default module cache.
func FirstGOPATH(gopath string) string {
	for _, p := range filepath.SplitList(gopath) {
		if p != "" {
			return p
		}
	}
	return ""
}
