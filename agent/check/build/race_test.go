package build

import (
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
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
	if testing.Short() {
		t.Skip("runs go test -race (seconds)")
	}
	w := checktest.New(t)
	res := w.Run(racePprofCheck(racyTest))
	if res.Status != check.Fail {
		t.Fatalf("status %s, want fail", res.Status)
	}
	if !checktest.EvidenceContains(res, "WARNING: DATA RACE") || !checktest.EvidenceContains(res, "server_test.go") {
		t.Errorf("evidence %v does not carry the race report naming server_test.go", res.Evidence)
	}
}

func TestRaceNeedsCgo(t *testing.T) {
	w := checktest.New(t)
	w.Setenv("CGO_ENABLED=0")
	res := w.Run(checktest.Find(t, Checks(), "build.race-pprof"))
	if res.Status != check.Fail || res.Evidence["CGO_ENABLED"] != "0" || res.Fix == "" {
		t.Fatalf("got %s evidence %v, want fail naming CGO_ENABLED=0 with a fix", res.Status, res.Evidence)
	}
}

func TestRaceNeedsCompiler(t *testing.T) {
	w := checktest.New(t)
	w.Setenv("CGO_ENABLED=1", "CC=gopatrol-no-such-cc")
	res := w.Run(checktest.Find(t, Checks(), "build.race-pprof"))
	if res.Status != check.Fail || !checktest.EvidenceContains(res, "gopatrol-no-such-cc") {
		t.Fatalf("got %s %q evidence %v, want fail naming the missing compiler", res.Status, res.Summary, res.Evidence)
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
