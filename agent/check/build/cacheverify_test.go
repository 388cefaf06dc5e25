package build

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// realEntries copies up to n real index entries with small outputs, and
// their outputs, from the machine's GOCACHE into a new cache directory. A
// fresh cache with too few of them is filled first by a real build.
func realEntries(t *testing.T, n int) (dir string, outputs []string) {
	t.Helper()
	out, err := exec.Command(checktest.RealGo(t), "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	src := strings.TrimSpace(string(out))
	dir, outputs = copyEntries(t, src, n)
	if len(outputs) < 3 {
		fillCache(t)
		dir, outputs = copyEntries(t, src, n)
	}
	if len(outputs) < 3 {
		testgate.Missing(t, "the machine's GOCACHE %s has fewer than 3 small entries to copy, even after a build", src)
	}
	return dir, outputs
}

// fillCache builds a small program with the machine's go and GOCACHE,
// which leaves dozens of small entries there, as any use of go does.
func fillCache(t *testing.T) {
	t.Helper()
	mod := t.TempDir()
	checktest.WriteFile(t, filepath.Join(mod, "go.mod"), "module fill\n\ngo 1.21\n", 0o644)
	checktest.WriteFile(t, filepath.Join(mod, "main.go"), "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"fill\") }\n", 0o644)
	cmd := exec.Command(checktest.RealGo(t), "build", "-o", os.DevNull, ".")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=", "GOPROXY=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fill the build cache: %v\n%s", err, out)
	}
}

// copyEntries copies up to n entries of src with outputs of at most 64 KiB.
func copyEntries(t *testing.T, src string, n int) (dir string, outputs []string) {
	t.Helper()
	dir = t.TempDir()
	matches, _ := filepath.Glob(filepath.Join(src, "??", "*-a"))
	for _, a := range matches {
		if len(outputs) == n {
			break
		}
		outID, size, err := readIndexEntry(a)
		if err != nil || size == 0 || size > 64<<10 {
			continue
		}
		d := filepath.Join(src, outID[:2], outID+"-d")
		data, err := os.ReadFile(d)
		if err != nil || int64(len(data)) != size {
			continue
		}
		entry, err := os.ReadFile(a)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []struct {
			path string
			data []byte
		}{{filepath.Join(dir, filepath.Base(filepath.Dir(a)), filepath.Base(a)), entry}, {filepath.Join(dir, outID[:2], outID+"-d"), data}} {
			if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		outputs = append(outputs, filepath.Join(dir, outID[:2], outID+"-d"))
	}
	return dir, outputs
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCacheSample(t *testing.T) {
	dir, outputs := realEntries(t, 12)
	clean, err := sampleCache(dir, sampleEntries, sampleBytes)
	if err != nil {
		t.Fatal(err)
	}
	if clean.Checked != len(outputs) || len(clean.Corrupt)+len(clean.Incomplete)+len(clean.Malformed) != 0 {
		t.Fatalf("clean copy: %+v, want %d checked and nothing wrong", clean, len(outputs))
	}

	flipByte(t, outputs[0])
	if err := os.Truncate(outputs[1], 1); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(outputs[2]); err != nil {
		t.Fatal(err)
	}
	s, err := sampleCache(dir, sampleEntries, sampleBytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Corrupt) != 1 || s.Corrupt[0].Path != outputs[0] {
		t.Errorf("corrupt %v, want %s", s.Corrupt, outputs[0])
	} else if want := strings.TrimSuffix(filepath.Base(outputs[0]), "-d"); s.Corrupt[0].Want != want || s.Corrupt[0].Got == want {
		t.Errorf("corrupt entry want %s got %s: want the recorded ID %s and a different hash", s.Corrupt[0].Want, s.Corrupt[0].Got, want)
	}
	if len(s.Incomplete) != 1 || s.Incomplete[0].Path != outputs[1] {
		t.Errorf("incomplete %v, want %s", s.Incomplete, outputs[1])
	}
	if s.Missing != 1 {
		t.Errorf("missing %d, want 1", s.Missing)
	}

	// The sample is bounded: one entry, or a byte budget of one byte.
	if s, _ := sampleCache(dir, 1, sampleBytes); s.Checked+len(s.Corrupt)+len(s.Incomplete)+s.Missing > 1 {
		t.Errorf("n=1 sample looked at more than one entry: %+v", s)
	}
	if s, _ := sampleCache(dir, sampleEntries, 1); s.Checked != 0 || s.Skipped == 0 {
		t.Errorf("1-byte budget: checked %d skipped %d, want 0 checked and some skipped", s.Checked, s.Skipped)
	}
}

func TestReadIndexEntryMalformed(t *testing.T) {
	dir := t.TempDir()
	id := strings.Repeat("ab", 32)
	good := "v1 " + id + " " + strings.Repeat("cd", 32) + " " + pad("12") + " " + pad("1700000000000000000") + "\n"
	for _, tc := range []struct{ name, content, want string }{
		{"good", good, ""},
		{"short", "v1 " + id + "\n", "bytes"},
		{"bad version", "v2" + good[2:], "invalid header"},
		{"bad size", strings.Replace(good, pad("12"), pad("x"), 1), "size"},
		{"other action", strings.Replace(good, id, strings.Repeat("ef", 32), 1), "file name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, id+"-a")
			checktest.WriteFile(t, p, tc.content, 0o644)
			_, size, err := readIndexEntry(p)
			switch {
			case tc.want == "" && (err != nil || size != 12):
				t.Errorf("got size %d, err %v; want 12, nil", size, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("err %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// An index entry is a 75-byte file; a huge file in its place is refused
// by its size, before anything is read.
func TestReadIndexEntryChecksSizeFirst(t *testing.T) {
	p := filepath.Join(t.TempDir(), strings.Repeat("ab", 32)+"-a")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(256 << 20); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err = readIndexEntry(p)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, check.ErrTooLarge) {
		t.Errorf("err %v, want ErrTooLarge", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("reading a 256 MiB entry allocated %d bytes: it was read before its size was checked", grew)
	}
}

func pad(s string) string { return strings.Repeat(" ", 20-len(s)) + s }

// The whole check on a cache of its own: clean, then with a flipped byte
// in an output and an index entry that records another output ID, the
// case only gocacheverify can see.
func TestCacheVerifyCheck(t *testing.T) {
	testgate.Slow(t, "builds the runtime into an empty GOCACHE (seconds)")
	w := checktest.New(t)
	gocache := filepath.Join(w.Dir, "gocache")
	w.Setenv("GOCACHE=" + gocache)
	c := checktest.Find(t, Checks(), "build.cacheverify")
	if res := w.Run(c); res.Status != check.Pass {
		t.Fatalf("fresh cache: status %s, want pass", res.Status)
	}

	entries, _ := filepath.Glob(filepath.Join(gocache, "??", "*-a"))
	var flipped, relabelled string
	for _, a := range entries {
		out, size, err := readIndexEntry(a)
		if err != nil || size == 0 {
			continue
		}
		d := filepath.Join(gocache, out[:2], out+"-d")
		if fi, err := os.Stat(d); err != nil || fi.IsDir() {
			continue
		}
		if flipped == "" {
			flipByte(t, d)
			flipped = d
			continue
		}
		// Record another, valid-looking output ID for every other
		// action: whichever the verify build repeats first panics.
		b, _ := os.ReadFile(a)
		other := strings.Repeat("0", 64)
		copy(b[3+hashHex+1:], other)
		checktest.WriteFile(t, a, string(b), 0o644)
		relabelled = a
	}
	if flipped == "" || relabelled == "" {
		t.Fatalf("the build left too few cache entries in %s", gocache)
	}
	res := w.Run(c)
	if res.Status != check.Fail {
		t.Fatalf("damaged cache: status %s, want fail", res.Status)
	}
	if !checktest.EvidenceContains(res, flipped) {
		t.Errorf("evidence %v does not name the flipped output %s", res.Evidence, flipped)
	}
	if !strings.Contains(res.Evidence["gocacheverify"], "cache verify failed") || res.Fix == "" {
		t.Errorf("gocacheverify evidence %q fix %q: want the verify failure and a fix", res.Evidence["gocacheverify"], res.Fix)
	}
	// go clean -cache, as printed, and the check passes again.
	if !checktest.FixRerun(t, w, c, res) {
		t.Errorf("fix %q was not applied", res.Fix)
	}
}
