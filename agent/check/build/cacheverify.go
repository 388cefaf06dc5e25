package build

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gopatrol/gopatrol/agent/check"
)

const (
	// sampleEntries bounds the re-hash to the newest index entries: those
	// are the ones the next build will use.
	sampleEntries = 200
	// sampleBytes bounds the bytes hashed, for caches full of test binaries.
	sampleBytes = 256 << 20
)

// verifyProgram is a main package with the runtime's dependencies and no
// more: under gocacheverify=1 every one of its ~30 actions is rebuilt and
// compared with the cache's record, in a few seconds.
const verifyProgram = `package main

func main() { println("gopatrol cacheverify") }
`

func cacheVerifyCheck() check.Check {
	return check.Check{
		ID:     "build.cacheverify",
		Title:  "the build cache is reproducible (gocacheverify=1) and its newest entries hash to their output IDs",
		Source: "4.2",
		Slow:   true,
		Run:    runCacheVerify,
	}
}

func runCacheVerify(ctx context.Context, env *check.Env) check.Result {
	gocache := env.Toolchain.Get("GOCACHE")
	if gocache == "" || gocache == "off" {
		return check.Skipf("GOCACHE is %q: there is no build cache to verify", gocache)
	}
	// Sample first: the verify build below rewrites damaged outputs of
	// the actions it repeats, which would hide them.
	sample, err := sampleCache(env.Target.Path(gocache), sampleEntries, sampleBytes)
	if err != nil {
		return check.Errorf("%v", err).With("GOCACHE", gocache)
	}

	s, err := newScratch(env, "gopatrol-cacheverify-")
	if err != nil {
		return check.Errorf("%v", err)
	}
	defer s.Remove()
	if err := s.Write(map[string]string{
		"go.mod":  "module gopatrol.test/cacheverify\n\ngo 1.21\n",
		"main.go": verifyProgram,
	}); err != nil {
		return check.Errorf("%v", err)
	}
	out, verr := s.Env.Go(ctx, []string{"GOWORK=off", "GOFLAGS=", "GODEBUG=gocacheverify=1"}, "build", "-o", os.DevNull, ".")

	var res check.Result
	verifyFailed := strings.Contains(string(out), "cache verify failed")
	switch {
	case len(sample.Corrupt) > 0:
		res = check.Failf("%d of %d sampled GOCACHE entries do not hash to their recorded output ID: builds would link damaged objects", len(sample.Corrupt), sample.Checked)
		if verifyFailed {
			res.Summary += "; and under gocacheverify=1 a rebuilt action differs from its cache record"
		}
	case verifyFailed:
		res = check.Failf("GODEBUG=gocacheverify=1: a rebuilt action produced a different output than GOCACHE records")
	case verr != nil:
		return check.Errorf("GODEBUG=gocacheverify=1 go build of a minimal program failed").
			With("error", verr.Error()).With("GOCACHE", gocache)
	case len(sample.Incomplete) > 0 || len(sample.Malformed) > 0:
		res = check.Warnf("%d GOCACHE outputs have the wrong size and %d index entries are malformed: the go command rebuilds them, but something is damaging the cache",
			len(sample.Incomplete), len(sample.Malformed))
	default:
		res = check.Passf("GODEBUG=gocacheverify=1 rebuilt a minimal program identically, and %d sampled GOCACHE entries hash to their output IDs", sample.Checked)
	}
	res = res.With("GOCACHE", gocache).
		With("checked", strconv.Itoa(sample.Checked)).
		With("missing_outputs", strconv.Itoa(sample.Missing))
	if sample.Skipped > 0 {
		res = res.With("not_hashed_over_budget", strconv.Itoa(sample.Skipped))
	}
	for i, c := range sample.Corrupt {
		res = res.With(fmt.Sprintf("corrupt.%d", i), c.String())
	}
	for i, c := range sample.Incomplete {
		res = res.With(fmt.Sprintf("incomplete.%d", i), c.String())
	}
	for i, m := range sample.Malformed {
		res = res.With(fmt.Sprintf("malformed.%d", i), m)
	}
	if verifyFailed {
		res = res.With("gocacheverify", verifyReport(string(out)))
	} else {
		res = res.With("gocacheverify", "ok")
	}
	if res.Status != check.Pass {
		res = res.WithFix("go clean -cache (then look for the cause: a full or failing disk, or two machines sharing one GOCACHE over the network)")
		// check --fix moves just the damaged files aside; a rebuilt
		// action that differs, or an entry it cannot name, needs the
		// whole cache cleaned, by a person.
		if !verifyFailed && len(sample.Malformed) == 0 {
			var paths []string
			for _, b := range slices.Concat(sample.Corrupt, sample.Incomplete) {
				paths = append(paths, gocache+strings.TrimPrefix(b.Path, env.Target.Path(gocache)))
			}
			res = res.WithRemedy(check.Remedy{Kind: check.PruneCache, Root: gocache, Paths: paths})
		}
	}
	return res
}

// verifyReport keeps the lines of cmd/go's "cache verify failed" panic that
// name the action and the two output IDs.
func verifyReport(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		// The runtime indents the continuation lines of a panic message.
		l = strings.TrimSpace(l)
		if strings.Contains(l, "cache verify failed") || strings.HasPrefix(l, "old: ") || strings.HasPrefix(l, "new: ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// cacheSample is what re-hashing the newest GOCACHE entries found.
type cacheSample struct {
	Checked    int // outputs hashed
	Missing    int // index entries whose output was trimmed: a miss, not damage
	Skipped    int // not hashed because of the byte budget
	Corrupt    []badOutput
	Incomplete []badOutput
	Malformed  []string
}

type badOutput struct {
	Path      string
	Want, Got string // output IDs (SHA-256), or sizes for Incomplete
}

func (b badOutput) String() string {
	return fmt.Sprintf("%s: want %s, got %s", b.Path, b.Want, b.Got)
}

// The layout of cmd/go/internal/cache: index entries <xx>/<actionID>-a hold
// "v1 <actionID> <outputID> <size, 20 wide> <unixnano, 20 wide>\n";
// the output is <xx>/<outputID>-d, a file whose SHA-256 is the output ID,
// or for cached executables a directory holding that one file.
const (
	hashHex   = 2 * sha256.Size
	entrySize = 2 + 1 + hashHex + 1 + hashHex + 1 + 20 + 1 + 20 + 1
)

type indexEntry struct {
	path  string
	mtime int64
}

// sampleCache re-hashes the outputs of the newest n index entries of the
// cache in dir, hashing at most maxBytes.
func sampleCache(dir string, n int, maxBytes int64) (cacheSample, error) {
	var s cacheSample
	var entries []indexEntry
	for i := 0; i < 256; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("%02x", i))
		des, err := os.ReadDir(sub)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return s, fmt.Errorf("read GOCACHE: %w", err)
		}
		for _, de := range des {
			if !strings.HasSuffix(de.Name(), "-a") {
				continue
			}
			fi, err := de.Info()
			if err != nil {
				continue // removed by a concurrent go clean or trim
			}
			entries = append(entries, indexEntry{filepath.Join(sub, de.Name()), fi.ModTime().UnixNano()})
		}
	}
	// The go command refreshes an entry's mtime when it uses it, so the
	// newest are the ones builds rely on now.
	slices.SortFunc(entries, func(a, b indexEntry) int { return cmp.Compare(b.mtime, a.mtime) })
	if len(entries) > n {
		entries = entries[:n]
	}
	var hashed int64
	for _, e := range entries {
		out, size, err := readIndexEntry(e.path)
		if err != nil {
			s.Malformed = append(s.Malformed, fmt.Sprintf("%s: %v", e.path, err))
			continue
		}
		file := filepath.Join(dir, out[:2], out+"-d")
		fi, err := os.Stat(file)
		if err != nil {
			s.Missing++
			continue
		}
		if fi.IsDir() { // a cached executable: the directory holds one file
			des, err := os.ReadDir(file)
			if err != nil || len(des) != 1 {
				s.Malformed = append(s.Malformed, fmt.Sprintf("%s: executable entry does not hold exactly one file", file))
				continue
			}
			file = filepath.Join(file, des[0].Name())
			if fi, err = os.Stat(file); err != nil {
				s.Missing++
				continue
			}
		}
		if fi.Size() != size {
			s.Incomplete = append(s.Incomplete, badOutput{file, strconv.FormatInt(size, 10) + " bytes", strconv.FormatInt(fi.Size(), 10) + " bytes"})
			continue
		}
		if hashed+size > maxBytes {
			s.Skipped++
			continue
		}
		got, err := hashFile(file)
		if err != nil {
			s.Missing++
			continue
		}
		hashed += size
		s.Checked++
		if got != out {
			s.Corrupt = append(s.Corrupt, badOutput{file, out, got})
		}
	}
	return s, nil
}

// readIndexEntry parses an action entry exactly as cmd/go does.
// The size is checked before the file is read: a cache directory can hold
// anything, and a huge file there must not be read whole.
func readIndexEntry(path string) (outputID string, size int64, err error) {
	b, err := check.ReadFile(path, entrySize)
	if err != nil {
		return "", 0, err
	}
	if len(b) != entrySize {
		return "", 0, fmt.Errorf("entry is %d bytes, want %d", len(b), entrySize)
	}
	if b[0] != 'v' || b[1] != '1' || b[2] != ' ' || b[3+hashHex] != ' ' || b[3+2*hashHex+1] != ' ' || b[3+2*hashHex+1+20+1] != ' ' || b[entrySize-1] != '\n' {
		return "", 0, errors.New("invalid header")
	}
	id := string(b[3 : 3+hashHex])
	if !strings.HasPrefix(filepath.Base(path), id) {
		return "", 0, errors.New("action ID does not match the file name")
	}
	out := string(b[3+hashHex+1 : 3+2*hashHex+1])
	if _, err := hex.DecodeString(out); err != nil {
		return "", 0, fmt.Errorf("output ID: %w", err)
	}
	size, err = strconv.ParseInt(strings.TrimLeft(string(b[3+2*hashHex+2:3+2*hashHex+2+20]), " "), 10, 64)
	if err != nil || size < 0 {
		return "", 0, fmt.Errorf("size field %q", b[3+2*hashHex+2:3+2*hashHex+2+20])
	}
	return out, size, nil
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
