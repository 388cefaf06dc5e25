package goelf

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzFuncs are the functions the probes look up, and two every Go program
// has.
var fuzzFuncs = []string{
	"internal/runtime/syscall/linux.Syscall6", "syscall.Syscall6",
	"crypto/tls.(*Conn).clientHandshake", "crypto/tls.(*Conn).sendAlertLocked",
	"main.main", "runtime.main",
}

// goCommandsOnPath is every file named go in a PATH directory, each once.
func goCommandsOnPath() []string {
	var out []string
	seen := map[string]bool{}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		p, err := filepath.EvalSymlinks(filepath.Join(dir, "go"))
		if err != nil || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return out
}

// FuzzGoExecutable reads executables as the probes do: open, Go version,
// functions by name. It must never panic, and every function it returns
// must be exactly the file's bytes at its file offset, where the kernel
// places the probe. Seeds: every go command on PATH (the issue's "ELF
// reading of every go on PATH"), this stripped test binary (Go's function
// table path), a C binary, and their ELF headers alone.
func FuzzGoExecutable(f *testing.F) {
	seeds := goCommandsOnPath()
	if len(seeds) == 0 {
		f.Fatal("no go command on PATH: the fuzzer's main seed is missing")
	}
	self, err := os.Executable()
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, self)
	if sh, err := exec.LookPath("sh"); err == nil {
		seeds = append(seeds, sh)
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:min(len(b), 64)])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ef, err := NewFile("fuzz", bytes.NewReader(data))
		if err != nil {
			if !strings.Contains(err.Error(), "ELF") && !strings.Contains(err.Error(), "machine") {
				t.Fatalf("NewFile error does not say what is wrong: %v", err)
			}
			return
		}
		defer ef.Close()
		_, _ = ef.GoVersion()
		fns, err := ef.Funcs(fuzzFuncs...)
		if err != nil {
			return
		}
		for name, fn := range fns {
			if fn.Name != name || len(fn.Code) == 0 {
				t.Fatalf("Funcs[%s] = %s with %d bytes", name, fn.Name, len(fn.Code))
			}
			end := fn.FileOffset + uint64(len(fn.Code))
			if end < fn.FileOffset || end > uint64(len(data)) || !bytes.Equal(data[fn.FileOffset:end], fn.Code) {
				t.Fatalf("%s: code is not the file's bytes at offset %#x (+%d, file %d bytes)", name, fn.FileOffset, len(fn.Code), len(data))
			}
		}
	})
}
