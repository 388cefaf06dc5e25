package matrix

import (
	"context"
	"errors"
	"fmt"
	"go/version"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

// ToolchainModule is the module path under which the go command fetches
// release toolchains (GOTOOLCHAIN=go1.N.M), one version per release and
// platform: v0.0.1-go1.21.13.linux-amd64.
const ToolchainModule = "golang.org/toolchain"

// CacheEnv names a directory that replaces the default cache directory.
const CacheEnv = "GOPATROL_MATRIX_CACHE"

// CacheDir is where the matrix keeps its toolchains between runs:
// $GOPATROL_MATRIX_CACHE, else gopatrol-matrix in the user's cache
// directory ($XDG_CACHE_HOME, else ~/.cache). Never inside the repository:
// the toolchains are hundreds of megabytes each.
func CacheDir() (string, error) {
	if d := os.Getenv(CacheEnv); d != "" {
		if !filepath.IsAbs(d) {
			return "", fmt.Errorf("%s=%s: not an absolute path; give an absolute directory such as $HOME/.cache/gopatrol-matrix", CacheEnv, d)
		}
		return d, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the matrix toolchains (%w); set %s", err, CacheEnv)
	}
	return filepath.Join(base, "gopatrol-matrix"), nil
}

// Fetcher finds and downloads release toolchains the way the go command
// does when it switches toolchains: GOTOOLCHAIN=go1.N.M with a module
// cache of the matrix's own, so that the downloads are the go command's
// (checksums verified against GOSUMDB) and survive between runs.
type Fetcher struct {
	// Go is the go command that downloads (the one running the tests).
	Go string
	// Cache is the matrix's cache directory (CacheDir); the module cache
	// holding the toolchains is its "mod" directory.
	Cache string
	// Log receives one line per download, so that a first run says what
	// it fetches and why it takes a while.
	Log *slog.Logger
	// Timeout bounds each go command (2 minutes when zero: a toolchain is
	// about 70 MB).
	Timeout time.Duration
}

// ModCache is the GOMODCACHE in which the toolchains are kept.
func (f *Fetcher) ModCache() string { return filepath.Join(f.Cache, "mod") }

// GOROOT is where the go command unpacks the toolchain of version (such
// as "go1.21.13") for this platform.
func (f *Fetcher) GOROOT(v string) string {
	return filepath.Join(f.ModCache(), ToolchainModule+"@"+moduleVersion(v))
}

func moduleVersion(v string) string {
	return "v0.0.1-" + v + "." + runtime.GOOS + "-" + runtime.GOARCH
}

// release matches a final release (no rc or beta) of Go 1.21 and later,
// which all carry a patch number.
var release = regexp.MustCompile(`^go1\.[0-9]+\.[0-9]+$`)

// Newest returns, for each minor release from go1.<minMinor> to the
// newest, its newest patch release, oldest first, from the versions of
// the toolchain module. A version list that is not of that module (or of
// another platform) is ignored.
func Newest(moduleVersions []string, minMinor int) []string {
	best := map[string]string{}
	min := fmt.Sprintf("go1.%d", minMinor)
	suffix := "." + runtime.GOOS + "-" + runtime.GOARCH
	for _, mv := range moduleVersions {
		v, ok := strings.CutPrefix(mv, "v0.0.1-")
		if !ok {
			continue
		}
		if v, ok = strings.CutSuffix(v, suffix); !ok || !release.MatchString(v) {
			continue
		}
		lang := version.Lang(v)
		if version.Compare(lang, min) < 0 {
			continue
		}
		if cur, ok := best[lang]; !ok || version.Compare(v, cur) > 0 {
			best[lang] = v
		}
	}
	var out []string
	for _, v := range best {
		out = append(out, v)
	}
	slices.SortFunc(out, version.Compare)
	return out
}

// Releases lists the newest patch of every release from go1.<minMinor>
// on: from the module proxy when it answers, else from the toolchains
// already in the cache (an offline run tests what it has, and says so).
func (f *Fetcher) Releases(ctx context.Context, minMinor int) ([]string, error) {
	out, err := f.goCmd(ctx, "", nil, "list", "-m", "-versions", ToolchainModule)
	if err == nil {
		fields := strings.Fields(string(out))
		if len(fields) > 1 {
			return Newest(fields[1:], minMinor), nil
		}
		err = fmt.Errorf("go list -m -versions %s: no versions in %q", ToolchainModule, check.FirstLine(string(out)))
	}
	cached, cerr := f.cached()
	if cerr != nil || len(cached) == 0 {
		return nil, errors.Join(err, cerr)
	}
	f.logger().Warn("matrix: the module proxy did not list the toolchains; testing the cached ones only", "error", err, "cached", cached)
	return Newest(cached, minMinor), nil
}

// cached lists the toolchain module versions unpacked in the cache.
func (f *Fetcher) cached() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(f.ModCache(), filepath.Dir(ToolchainModule)))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var vs []string
	for _, e := range entries {
		if v, ok := strings.CutPrefix(e.Name(), filepath.Base(ToolchainModule)+"@"); ok {
			vs = append(vs, v)
		}
	}
	return vs, nil
}

// Fetch makes sure the toolchain of version v is in the cache and returns
// its GOROOT. downloaded says that this call fetched it.
func (f *Fetcher) Fetch(ctx context.Context, v string) (goroot string, downloaded bool, err error) {
	goroot = f.GOROOT(v)
	if _, err := os.Stat(filepath.Join(goroot, "bin", "go")); err == nil {
		return goroot, false, nil
	}
	f.logger().Info("matrix: downloading a Go toolchain (about 70 MB; once, kept for later runs)",
		"version", v, "module", ToolchainModule+"@"+moduleVersion(v), "into", f.ModCache())
	start := time.Now()
	out, err := f.goCmd(ctx, "", []string{"GOTOOLCHAIN=" + v}, "version")
	if err != nil {
		return "", false, fmt.Errorf("fetch %s: %w", v, err)
	}
	if !strings.Contains(string(out), v+" ") {
		return "", false, fmt.Errorf("fetch %s: GOTOOLCHAIN=%s go version printed %q", v, v, check.FirstLine(string(out)))
	}
	if _, err := os.Stat(filepath.Join(goroot, "bin", "go")); err != nil {
		return "", false, fmt.Errorf("fetch %s: the go command ran it but it is not at %s: %w", v, goroot, err)
	}
	f.logger().Info("matrix: downloaded", "version", v, "took", time.Since(start).Round(time.Millisecond))
	return goroot, true, nil
}

// goCmd runs the fetching go command in an empty directory (no go.mod
// may pick another toolchain) with the matrix's module cache, the
// caller's GOPROXY and GOSUMDB, and a deadline.
func (f *Fetcher) goCmd(ctx context.Context, dir string, extra []string, args ...string) ([]byte, error) {
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := os.MkdirAll(f.ModCache(), 0o755); err != nil {
		return nil, fmt.Errorf("matrix cache: %w", err)
	}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "gopatrol-matrix-fetch-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains([]string{"GOMODCACHE", "GOFLAGS", "GOTOOLCHAIN", "GOWORK", "GO111MODULE"}, k)
	})
	env = append(env, "GOMODCACHE="+f.ModCache(), "GOFLAGS=", "GOWORK=off", "GO111MODULE=on")
	t := &check.Target{Root: "/", Dir: dir, Environ: append(env, extra...)}
	out, err := check.CombinedOutput(t.Command(ctx, f.Go, args...))
	if err != nil {
		return out, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, check.FirstLine(string(out)))
	}
	return out, nil
}

func (f *Fetcher) logger() *slog.Logger {
	if f.Log != nil {
		return f.Log
	}
	return slog.Default()
}
