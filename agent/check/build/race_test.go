package build

import (
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/cgo"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// racyTest writes a map from two goroutines without a lock.
const racyTest = `package racepprof

import (
	"sync"
	"testing"
)

func TestHTTPServer(t *testing.T) {
	m := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m[0]++
		}()
	}
	wg.Wait()
	t.Logf("gopatrol-baseline requests=%d", m[0])
}
`

// One slow test: it runs the real go test -race on a real data race.
func TestRaceDetectorFindsRace(t *testing.T) {
	testgate.Slow(t, "runs go test -race (seconds)")
	w := checktest.New(t)
	res := w.Run(racePprofCheck(racyTest))
	if res.Status != check.Fail {
		t.Fatalf("status %s, want fail", res.Status)
	}
	if !checktest.EvidenceContains(res, "WARNING: DATA RACE") || !checktest.EvidenceContains(res, "server_test.go") {
		t.Errorf("evidence %v does not carry the race report naming server_test.go", res.Evidence)
	}
	// A race needs a person to read its report: the fix says so.
	if checktest.FixRerun(t, w, racePprofCheck(racyTest), res) {
		t.Errorf("fix %q was applied as if a race could be fixed by a command", res.Fix)
	}
}

func TestRaceNeedsCgo(t *testing.T) {
	w := checktest.New(t)
	w.Setenv("CGO_ENABLED=0")
	res := w.Run(checktest.Find(t, Checks(), "build.race-pprof"))
	if res.Status != check.Fail || res.Evidence["CGO_ENABLED"] != "0" || res.Fix == "" {
		t.Fatalf("got %s evidence %v, want fail naming CGO_ENABLED=0 with a fix", res.Status, res.Evidence)
	}
	testgate.Slow(t, "the fix's rerun runs go test -race (seconds)")
	// A C compiler is installed here (the world keeps the real PATH):
	// the printed export turns cgo on, and go test -race runs clean.
	if !checktest.FixRerun(t, w, checktest.Find(t, Checks(), "build.race-pprof"), res) {
		t.Errorf("fix %q was not applied: a C compiler is on PATH", res.Fix)
	}
}

func TestRaceNeedsCompiler(t *testing.T) {
	w := checktest.New(t)
	w.Setenv("CGO_ENABLED=1", "CC=gopatrol-no-such-cc")
	res := w.Run(checktest.Find(t, Checks(), "build.race-pprof"))
	if res.Status != check.Fail || !checktest.EvidenceContains(res, "gopatrol-no-such-cc") {
		t.Fatalf("got %s %q evidence %v, want fail naming the missing compiler", res.Status, res.Summary, res.Evidence)
	}
	// A consequence of cgo.toolchain: no fix of its own.
	race := checktest.Find(t, Checks(), "build.race-pprof")
	if res.Evidence[check.Follows] != "cgo.toolchain" {
		t.Errorf("evidence %v does not say the failure follows from cgo.toolchain", res.Evidence)
	}
	checktest.FixRerun(t, w, race, res)
	testgate.Slow(t, "the owner's fix is followed by go test -race (seconds)")
	// The owner's printed fix, applied in this world, makes the race
	// build work too.
	owner := checktest.Find(t, cgo.Checks(), "cgo.toolchain")
	ores := w.Run(owner)
	if ores.Status != check.Fail || ores.Fix == "" {
		t.Fatalf("cgo.toolchain: %s %q fix %q, want fail with a fix", ores.Status, ores.Summary, ores.Fix)
	}
	if !checktest.FixRerun(t, w, owner, ores) {
		t.Fatalf("cgo.toolchain's fix %q was not applied", ores.Fix)
	}
	if res := w.Run(race); res.Status != check.Pass {
		t.Errorf("after cgo.toolchain's fix: %s: %s %v", res.Status, res.Summary, res.Evidence)
	}
}

func TestRaceSupported(t *testing.T) {
	for _, tc := range []struct {
		goos, goarch string
		want         bool
	}{
		{"linux", "amd64", true}, {"linux", "riscv64", true}, {"linux", "386", false},
		{"darwin", "arm64", true}, {"windows", "arm64", false}, {"openbsd", "amd64", false},
	} {
		if got := raceSupported(tc.goos, tc.goarch); got != tc.want {
			t.Errorf("raceSupported(%s, %s) = %v, want %v", tc.goos, tc.goarch, got, tc.want)
		}
	}
}
