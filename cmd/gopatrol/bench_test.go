package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check/proxy/proxytest"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// seedScript is the baseline of the doctor: the seed document's own
// commands, as a user would run them instead of gopatrol.
const seedScript = "../../../shared/bench/seed-checks.sh"

// doctorWorld is a module and a loopback module proxy with its own CA, so
// that both sides dial 127.0.0.1 and nothing leaves the machine.
func doctorWorld(b *testing.B) (moduleDir string, env []string) {
	b.Helper()
	p := proxytest.New(b)
	p.Module("example.com/probe", "v1.0.0", map[string]string{"probe.go": "package probe\n"})
	moduleDir = b.TempDir()
	os.WriteFile(filepath.Join(moduleDir, "go.mod"), []byte("module example.test/m\n\ngo 1.26\n"), 0o644)
	os.WriteFile(filepath.Join(moduleDir, "m.go"), []byte("package m\n"), 0o644)
	env = slices.Concat(os.Environ(), p.Env(), []string{
		"GOPATROL_PROBE_MODULE=example.com/probe",
		"MODULE_DIR=" + moduleDir,
		"NO_COLOR=1",
	})
	return moduleDir, env
}

type hyperfineRun struct {
	Results []struct {
		Command string  `json:"command"`
		Median  float64 `json:"median"`
		Mean    float64 `json:"mean"`
		Stddev  float64 `json:"stddev"`
	} `json:"results"`
}

// unsetOffset runs a command without the variable hyperfine sets to a
// random length on every run (to vary the stack's alignment): a shell
// does not change its environment between two commands, and a changed
// environment is a reason to prove the toolchain again. All three
// commands run through it alike.
const unsetOffset = "env -u HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET "

var (
	doctorOnce   sync.Once
	doctorResult hyperfineRun
	doctorErr    error
)

// BenchmarkDoctorVsSeed times `gopatrol check` (the default, fast set)
// against ../shared/bench/seed-checks.sh side by side in one hyperfine run,
// on a warm build cache, and holds the doctor to its targets: median at
// most 0.5 s, at least 8 times faster than the seed's commands. A repeated
// run lets the kept proofs of its toolchain stand (docs/checks.md, "Kept
// proofs"), as it does for a user; `gopatrol check --fresh`, which proves
// on every run, is timed in the same run and reported beside it.
func BenchmarkDoctorVsSeed(b *testing.B) {
	testgate.Tool(b, "hyperfine", "hyperfine")
	if _, err := os.Stat(seedScript); err != nil {
		b.Skipf("baseline %s: %v", seedScript, err)
	}
	moduleDir, env := doctorWorld(b)
	doctorOnce.Do(func() {
		out := filepath.Join(b.TempDir(), "hyperfine.json")
		cmd := exec.Command("hyperfine", "--warmup", "3", "--runs", "20", "--ignore-failure", "--style", "basic",
			"--export-json", out,
			"-n", "gopatrol check", unsetOffset+gopatrolBin+" check -C "+moduleDir,
			"-n", "gopatrol check --fresh", unsetOffset+gopatrolBin+" check --fresh -C "+moduleDir,
			"-n", "seed-checks.sh", unsetOffset+"bash "+seedScript)
		cmd.Env = env
		var log []byte
		log, doctorErr = cmd.CombinedOutput()
		b.Logf("%s", log)
		if doctorErr != nil {
			return
		}
		var data []byte
		if data, doctorErr = os.ReadFile(out); doctorErr == nil {
			doctorErr = json.Unmarshal(data, &doctorResult)
		}
	})
	if doctorErr != nil || len(doctorResult.Results) != 3 {
		b.Fatalf("hyperfine: %v %+v", doctorErr, doctorResult)
	}
	gp, fresh, seed := doctorResult.Results[0], doctorResult.Results[1], doctorResult.Results[2]
	ratio := seed.Median / gp.Median
	if gp.Median > 0.5 {
		b.Errorf("gopatrol check median %.3fs, target <= 0.5s", gp.Median)
	}
	if ratio < 8 {
		b.Errorf("gopatrol check is %.1fx faster than seed-checks.sh, target >= 8x", ratio)
	}
	// The per-op figure: one doctor run in the same world.
	for b.Loop() {
		cmd := exec.Command(gopatrolBin, "check", "-C", moduleDir, "-o", "json")
		cmd.Env = env
		if out, err := cmd.Output(); err != nil && !strings.Contains(string(out), `"schema"`) {
			b.Fatalf("gopatrol check: %v", err)
		}
	}
	// After the loop: b.Loop resets what was reported before it.
	b.ReportMetric(gp.Median, "gopatrol-median-s")
	b.ReportMetric(seed.Median, "seed-median-s")
	b.ReportMetric(ratio, "x-faster")
	// Reported, not held to the target: every run proves the toolchain
	// by running it, as the first run after a change does.
	b.ReportMetric(fresh.Median, "fresh-median-s")
	b.ReportMetric(seed.Median/fresh.Median, "fresh-x-faster")
}
