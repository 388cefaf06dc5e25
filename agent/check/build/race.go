package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/gopatrol/gopatrol/agent/check"
)

// raceTestSource is the generated test that `go test -race` runs: an
// httptest server hit by concurrent clients, after which the test logs the
// heap and goroutine baseline that the check reports. Tests of the check
// replace it with one that really races.
const raceTestSource = `package racepprof

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestHTTPServer(t *testing.T) {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()

	var mu sync.Mutex
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				resp, err := srv.Client().Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	srv.Close()
	srv.Client().CloseIdleConnections()
	// Give closed connections' goroutines a moment to exit before counting.
	for i := 0; i < 50 && runtime.NumGoroutine() > goroutines; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("gopatrol-baseline requests=%d heap_alloc_before=%d heap_alloc_after=%d heap_inuse_after=%d goroutines_before=%d goroutines_after=%d",
		hits, before.HeapAlloc, after.HeapAlloc, after.HeapInuse, goroutines, runtime.NumGoroutine())
}
`

func racePprofCheck(testSource string) check.Check {
	return check.Check{
		ID:     "build.race-pprof",
		Title:  "go test -race of an HTTP server test runs clean and gives a heap baseline",
		Source: "4.1",
		Slow:   true,
		Run: func(ctx context.Context, env *check.Env) check.Result {
			return runRacePprof(ctx, env, testSource)
		},
	}
}

// raceSupported is cmd/go's internal/platform.RaceDetectorSupported.
func raceSupported(goos, goarch string) bool {
	switch goos {
	case "linux":
		return goarch == "amd64" || goarch == "arm64" || goarch == "loong64" || goarch == "ppc64le" || goarch == "riscv64" || goarch == "s390x"
	case "darwin":
		return goarch == "amd64" || goarch == "arm64"
	case "freebsd", "netbsd", "windows":
		return goarch == "amd64"
	}
	return false
}

func runRacePprof(ctx context.Context, env *check.Env, testSource string) check.Result {
	tc := env.Toolchain
	goos, goarch := tc.Get("GOOS"), tc.Get("GOARCH")
	if !raceSupported(goos, goarch) {
		return check.Skipf("the race detector is not supported on %s/%s", goos, goarch).
			With("GOOS", goos).With("GOARCH", goarch)
	}
	// -race links the C race runtime, so it needs cgo (except on darwin).
	if goos != "darwin" {
		if tc.Get("CGO_ENABLED") != "1" {
			return check.Failf("go test -race cannot work: CGO_ENABLED=%s, and -race needs cgo on %s/%s", tc.Get("CGO_ENABLED"), goos, goarch).
				With("CGO_ENABLED", tc.Get("CGO_ENABLED")).
				WithFix("%s", enableCgo(env.Target, tc.Get("CC")))
		}
		cc := strings.Fields(tc.Get("CC"))
		if len(cc) == 0 {
			cc = []string{"gcc"}
		}
		if !filepath.IsAbs(cc[0]) && len(env.Target.LookPath(cc[0])) == 0 {
			// cgo.toolchain owns CC and fails on the same missing
			// compiler with the fix: this is its consequence.
			return check.Failf("go test -race cannot work: the C compiler %q is not on PATH, and -race needs cgo; this follows from cgo.toolchain, fix that first", cc[0]).
				With("CC", tc.Get("CC")).With(check.Follows, "cgo.toolchain")
		}
	}

	s, err := newScratch(env, "gopatrol-race-")
	if err != nil {
		return check.Errorf("%v", err)
	}
	defer s.Remove()
	if err := s.Write(map[string]string{
		"go.mod":         "module gopatrol.test/racepprof\n\ngo 1.21\n",
		"server_test.go": testSource,
	}); err != nil {
		return check.Errorf("%v", err)
	}
	// GORACE is replaced: the user's log_path would hide the reports from
	// us, and atexit_sleep_ms=0 saves the race runtime's 1s exit delay.
	cmd, done, err := s.Env.GoCommand(ctx, []string{"GOWORK=off", "GOFLAGS=", "GORACE=atexit_sleep_ms=0"},
		"test", "-race", "-count=1", "-v", "-run", "^TestHTTPServer$", "-memprofile", "mem.prof", ".")
	if err != nil {
		return check.Errorf("%v", err)
	}
	defer done()
	out, err := check.CombinedOutput(cmd)
	text := string(out)
	if i := strings.Index(text, "WARNING: DATA RACE"); i >= 0 {
		return check.Failf("go test -race found a data race in the generated HTTP server test").
			With("race", check.FirstLines(text[i:], 12, "\n")).
			WithFix("the race is in code every HTTP server test runs (net/http, the toolchain or its race runtime): run <the race report's test> again after `go clean -cache` and with a clean Go installation, and report it to its owner if it stays")
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return check.Errorf("run go test -race: %v", err)
	}
	if err != nil {
		return check.Failf("go test -race of a generated HTTP server test failed").
			With("output", check.FirstLines(text, 12, "\n")).
			WithFix("run `go test -race` on <any package> to see the full error; -race needs cgo and a working C compiler")
	}
	res := check.Passf("go test -race of a concurrent HTTP server test found no race")
	baseline := ""
	for _, line := range strings.Split(text, "\n") {
		if _, rest, ok := strings.Cut(line, "gopatrol-baseline "); ok {
			baseline = rest
		}
	}
	if baseline == "" {
		return check.Errorf("the race test printed no heap baseline").With("output", check.FirstLines(text, 12, "\n"))
	}
	for _, kv := range strings.Fields(baseline) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			res = res.With(k, v)
		}
	}
	if fi, err := os.Stat(filepath.Join(s.Host, "mem.prof")); err == nil {
		res = res.With("memprofile_bytes", fmt.Sprint(fi.Size()))
	} else {
		res = res.With("memprofile_error", err.Error())
	}
	return res
}

// enableCgo is the fix for race builds under CGO_ENABLED=0: set it to 1
// where the builds read it (go env -w cannot override the environment),
// once a C compiler is installed.
func enableCgo(t *check.Target, cc string) string {
	set := "go env -w CGO_ENABLED=1"
	if _, ok := t.LookupEnv("CGO_ENABLED"); ok {
		set = "export CGO_ENABLED=1"
	}
	name := "gcc"
	if f := strings.Fields(cc); len(f) > 0 {
		name = f[0]
	}
	if filepath.IsAbs(name) || len(t.LookPath(name)) > 0 {
		return set + " (race builds need cgo)"
	}
	return fmt.Sprintf("install <a C compiler: apt-get install gcc>, then %s (race builds need cgo; %s is not on PATH)", set, name)
}
