package objstamp

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Stamp is the content of a stamp file.
type Stamp struct {
	ClangMajor string
	Inputs     map[string]string // path relative to the stamp's dir -> sha256
	Objects    map[string]string
}

// Expand turns directories among paths into the regular files below them.
func Expand(dir string, paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		full := filepath.Join(dir, p)
		fi, err := os.Stat(full)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			out = append(out, filepath.ToSlash(p))
			continue
		}
		err = filepath.WalkDir(full, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(dir, path)
			out = append(out, filepath.ToSlash(rel))
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(out)
	return out, nil
}

// Compute hashes inputs and objects (relative to dir).
func Compute(dir, clangMajor string, inputs, objects []string) (*Stamp, error) {
	st := &Stamp{ClangMajor: clangMajor, Inputs: map[string]string{}, Objects: map[string]string{}}
	ins, err := Expand(dir, inputs)
	if err != nil {
		return nil, err
	}
	for _, set := range []struct {
		paths []string
		into  map[string]string
	}{{ins, st.Inputs}, {objects, st.Objects}} {
		for _, p := range set.paths {
			h, err := hashFile(filepath.Join(dir, p))
			if err != nil {
				return nil, err
			}
			set.into[p] = h
		}
	}
	return st, nil
}

func hashFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Write writes st to path.
func (st *Stamp) Write(path string) error {
	var b strings.Builder
	b.WriteString("# Written by `go generate` (bpf/internal/stampgen); checked by TestObjectsFresh. Do not edit.\n")
	fmt.Fprintf(&b, "clang %s\n", st.ClangMajor)
	for _, kind := range []struct {
		name string
		m    map[string]string
	}{{"input", st.Inputs}, {"object", st.Objects}} {
		keys := make([]string, 0, len(kind.m))
		for k := range kind.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s %s %s\n", kind.name, kind.m[k], k)
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// Read parses a stamp file.
func Read(path string) (*Stamp, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st := &Stamp{Inputs: map[string]string{}, Objects: map[string]string{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "clang":
			st.ClangMajor = f[1]
		case len(f) == 3 && f[0] == "input":
			st.Inputs[f[2]] = f[1]
		case len(f) == 3 && f[0] == "object":
			st.Objects[f[2]] = f[1]
		default:
			return nil, fmt.Errorf("%s: malformed line %q", path, line)
		}
	}
	return st, sc.Err()
}

// Verify recomputes the hashes of the files named in the stamp at path and
// lists every mismatch; requiredInputs are files that must be covered by the
// stamp (e.g. every file under c/ the object includes).
func Verify(path string, requiredInputs []string) error {
	st, err := Read(path)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	var stale []string
	req, err := Expand(dir, requiredInputs)
	if err != nil {
		return err
	}
	for _, r := range req {
		if _, ok := st.Inputs[r]; !ok {
			stale = append(stale, fmt.Sprintf("%s is not recorded as an input", r))
		}
	}
	for _, m := range []map[string]string{st.Inputs, st.Objects} {
		for p, want := range m {
			got, err := hashFile(filepath.Join(dir, p))
			switch {
			case err != nil:
				stale = append(stale, err.Error())
			case got != want:
				stale = append(stale, fmt.Sprintf("%s changed since the last `go generate`", p))
			}
		}
	}
	if len(stale) > 0 {
		sort.Strings(stale)
		return fmt.Errorf("stale BPF objects (run `make generate` and commit the result): %s", strings.Join(stale, "; "))
	}
	return nil
}

var clangVersionRE = regexp.MustCompile(`clang version (\d+)\.`)

// ClangMajor returns the major version of cc, or "" when it cannot run.
func ClangMajor(cc string) string {
	out, err := exec.Command(cc, "--version").Output()
	if err != nil {
		return ""
	}
	m := clangVersionRE.FindSubmatch(out)
	if m == nil {
		return ""
	}
	return string(m[1])
}
