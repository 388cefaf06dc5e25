package toolchain

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gopatrol/gopatrol/agent/check"
)

// binInfo is what a file that claims to be go says about itself.
type binInfo struct {
	Path    string // in the target's namespace
	Script  bool   // starts with #!, or is text
	Version string // go version it was built with (= what `go version` prints)
	Main    string // main package path; cmd/go for the go command
	GOOS    string // build settings, like `go version -m`
	GOARCH  string
	Err     error // why it is not a Go binary
}

// IsGo reports whether the file is the go command.
func (b binInfo) IsGo() bool { return b.Err == nil && !b.Script && b.Main == "cmd/go" }

// String describes the file for evidence.
func (b binInfo) String() string {
	switch {
	case b.Script:
		return b.Path + " (script, not a Go binary)"
	case b.Err != nil:
		return b.Path + " (" + b.Err.Error() + ")"
	case b.Main != "cmd/go":
		return fmt.Sprintf("%s (%s binary of %s, not cmd/go)", b.Path, b.Version, b.Main)
	}
	return b.Path + " (" + b.Version + ")"
}

// readBinInfo reads the build info of a binary of the target in-process,
// which is what `go version -m` prints, without running it.
func readBinInfo(t *check.Target, p string) binInfo {
	bi := binInfo{Path: p}
	f, err := os.Open(t.Path(p))
	if err != nil {
		bi.Err = err
		return bi
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	if bytes.HasPrefix(head, []byte("#!")) {
		bi.Script = true
		return bi
	}
	if !bytes.HasPrefix(head, []byte("\x7fELF")) && !bytes.Contains(head, []byte{0}) {
		bi.Script = true // a text file the shell would run as a script
		return bi
	}
	info, err := buildinfo.Read(f)
	if err != nil {
		bi.Err = fmt.Errorf("no Go build info: %v", err)
		return bi
	}
	bi.Version, bi.Main = info.GoVersion, info.Path
	for _, s := range info.Settings {
		switch s.Key {
		case "GOOS":
			bi.GOOS = s.Value
		case "GOARCH":
			bi.GOARCH = s.Value
		}
	}
	return bi
}

// pathEntry is one `go` found in a PATH directory, including dangling links
// and non-executables that LookPath skips.
type pathEntry struct {
	Dir, Path string
	Err       error // stat error (dangling link)
	NoExec    bool
}

// scanPath lists every file named go in the target's PATH, in order, and
// the relative PATH entries (which depend on the cwd).
func scanPath(t *check.Target) (found []pathEntry, relative []string) {
	seen := map[string]bool{}
	for _, dir := range filepath.SplitList(t.Getenv("PATH")) {
		if dir == "" || !filepath.IsAbs(dir) {
			if dir == "" {
				dir = "(empty entry = current directory)"
			}
			relative = append(relative, dir)
			continue
		}
		p := filepath.Join(dir, "go")
		if seen[p] {
			continue
		}
		seen[p] = true
		if _, err := os.Lstat(t.LinkPath(p)); err != nil {
			continue
		}
		e := pathEntry{Dir: dir, Path: p}
		fi, err := os.Stat(t.Path(p))
		switch {
		case err != nil:
			e.Err = err
		case fi.IsDir():
			continue
		case fi.Mode()&0o111 == 0:
			e.NoExec = true
		}
		found = append(found, e)
	}
	return found, relative
}

// readVersionFile returns the first line of $GOROOT/VERSION ("go1.26.8"),
// which is what a release root says it is.
func readVersionFile(t *check.Target, goroot string) (string, error) {
	b, err := t.ReadFile(filepath.Join(goroot, "VERSION"))
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line), nil
}

// errNoDefault says the binary has no GOROOT baked in at link time, as
// release binaries built with -trimpath do not.
var errNoDefault = errors.New("no GOROOT recorded at link time")

// linkedGOROOT reads runtime.defaultGOROOT, the GOROOT that cmd/link wrote
// into the binary, from its ELF symbol table. A variable in .bss was never
// set: the binary derives its root from its own location only.
func linkedGOROOT(t *check.Target, p string) (string, error) {
	f, err := elf.Open(t.Path(p))
	if err != nil {
		return "", err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return "", fmt.Errorf("read symbols of %s: %w", p, err)
	}
	var addr uint64
	for _, s := range syms {
		if s.Name == "runtime.defaultGOROOT" {
			addr = s.Value
			break
		}
	}
	if addr == 0 {
		return "", errNoDefault
	}
	ptrSize := 8
	if f.Class == elf.ELFCLASS32 {
		ptrSize = 4
	}
	hdr, err := readVaddr(f, addr, uint64(2*ptrSize))
	if err != nil {
		return "", errNoDefault // in .bss: zero
	}
	word := func(b []byte) uint64 {
		if ptrSize == 4 {
			return uint64(f.ByteOrder.Uint32(b))
		}
		return f.ByteOrder.Uint64(b)
	}
	ptr, n := word(hdr), word(hdr[ptrSize:])
	if ptr == 0 || n == 0 || n > 4096 {
		return "", errNoDefault
	}
	s, err := readVaddr(f, ptr, n)
	if err != nil {
		return "", fmt.Errorf("read runtime.defaultGOROOT of %s: %w", p, err)
	}
	return string(s), nil
}

// readVaddr reads n bytes at a virtual address from the file-backed part
// of a loadable segment.
func readVaddr(f *elf.File, addr, n uint64) ([]byte, error) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && addr >= p.Vaddr && addr+n <= p.Vaddr+p.Filesz {
			b := make([]byte, n)
			if _, err := p.ReadAt(b, int64(addr-p.Vaddr)); err != nil {
				return nil, err
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("address %#x not in a file-backed segment", addr)
}

// isGOROOT is cmd/go's test: a directory with pkg/tool.
func isGOROOT(t *check.Target, dir string) bool {
	fi, err := os.Stat(t.Path(filepath.Join(dir, "pkg", "tool")))
	return err == nil && fi.IsDir()
}

// sameDir is cmd/go's isSameDir.
func sameDir(t *check.Target, a, b string) bool {
	if a == b {
		return true
	}
	fa, err1 := os.Stat(t.Path(a))
	fb, err2 := os.Stat(t.Path(b))
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}
