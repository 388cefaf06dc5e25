package goelf

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestStrippedMatchesSymbols builds one program with and without -s: the
// functions read from Go's function table must be the ELF symbols'.
func TestStrippedMatchesSymbols(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nimport \"os\"\n\nfunc main() { os.Mkdir(\"/nonexistent/x\", 0o755) }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := func(name, ldflags string) string {
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags="+ldflags, "-o", out, src)
		cmd.Env = append(os.Environ(), "GOFLAGS=", "GOTOOLCHAIN=local", "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
		return out
	}
	names := []string{"main.main", "runtime.main", "internal/runtime/syscall/linux.Syscall6", "no.such.func"}
	funcs := func(path string) map[string]*Func {
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fns, err := f.Funcs(names...)
		if err != nil {
			t.Fatalf("Funcs(%s): %v", path, err)
		}
		return fns
	}
	full, stripped := funcs(build("full", "")), funcs(build("stripped", "-s -w"))
	if full["no.such.func"] != nil || stripped["no.such.func"] != nil {
		t.Error("a missing function was resolved")
	}
	for _, n := range names[:3] {
		a, b := full[n], stripped[n]
		if a == nil || b == nil {
			t.Fatalf("%s: symbol table %v, function table %v", n, a, b)
		}
		// The function table's extent runs to the next function: the
		// difference can only be INT3 padding.
		pad := strings.TrimLeft(string(b.Code[min(len(a.Code), len(b.Code)):]), "\xcc")
		if a.Address != b.Address || a.FileOffset != b.FileOffset || !strings.HasPrefix(string(b.Code), string(a.Code)) || pad != "" {
			t.Errorf("%s: symbol table %#x/%#x/%d bytes, function table %#x/%#x/%d bytes",
				n, a.Address, a.FileOffset, len(a.Code), b.Address, b.FileOffset, len(b.Code))
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(script); err == nil {
		t.Error("a shell script opened as ELF")
	}
	if _, err := Open(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
	f, err := Open("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.GoVersion(); err == nil {
		t.Error("/bin/sh has a Go version")
	}
}
