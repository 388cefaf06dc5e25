package goelf

import (
	"bytes"
	"encoding/binary"
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

// TestFuncsRefusesInconsistentFiles: a file whose headers disagree about
// where a function's bytes are is refused, never read one way and probed
// the other. Each case corrupts one field of a small real executable.
func TestFuncsRefusesInconsistentFiles(t *testing.T) {
	goCmd := goCommandsOnPath(t)[0]
	le := binary.LittleEndian
	shOff := func(b []byte) int { return int(le.Uint64(b[0x28:])) }
	const sectionSize, textIdx, symtabIdx = 64, 1, 3
	tests := []struct {
		name    string
		corrupt func(b []byte)
		want    string
	}{
		{"section offset off the segment's", func(b []byte) {
			off := shOff(b) + textIdx*sectionSize + 24 // Section64.Off
			le.PutUint64(b[off:], le.Uint64(b[off:])+16)
		}, "disagree on its bytes"},
		{"segment file size cut short", func(b []byte) {
			le.PutUint64(b[64+32:], 0x100+8) // Prog64.Filesz: 8 bytes of code
		}, "in no executable segment's file bytes"},
		{"symbol size wraps around", func(b []byte) {
			sym := int(le.Uint64(b[shOff(b)+symtabIdx*sectionSize+24:])) + 24 // first symbol after the null one
			// Sym64.Size such that Value+Size wraps to 0x20: an end below
			// the start, which a plain end check accepts.
			le.PutUint64(b[sym+16:], -le.Uint64(b[sym+8:])+0x20)
		}, "lies outside section"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := miniGoELF(t, goCmd)
			if n := checkRead(t, b); n < 3 {
				t.Fatalf("the intact copy reads %d functions", n)
			}
			tt.corrupt(b)
			f, err := NewFile("corrupt", bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			fns, err := f.Funcs(probedFuncs...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Funcs = %d functions, %v; want an error saying %q", len(fns), err, tt.want)
			}
		})
	}
}
