package bpf

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// negRAX is the first instruction of the error branch since go1.19.
var negRAX = []byte{0x48, 0xf7, 0xd8}

// TestResolveGoTool: in the real go command and its tools, and in this
// stripped test binary, the site is a NEG RAX right after the JBE that
// follows SYSCALL; CMP RAX, $-4095, as the file's own bytes show.
func TestResolveGoTool(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	paths := append(DefaultGoTools(), self)
	if len(paths) < 4 {
		t.Fatalf("go command and tools not found: %v", paths)
	}
	for _, p := range paths {
		tool, err := ResolveGoTool(p)
		if err != nil {
			t.Errorf("ResolveGoTool(%s): %v", p, err)
			continue
		}
		if len(tool.Sites) != 1 || !strings.HasPrefix(tool.GoVersion, "go1.") {
			t.Errorf("%s: %s, sites %+v; want one (go1.19 and later have one raw syscall function)", p, tool.GoVersion, tool.Sites)
			continue
		}
		site := tool.Sites[0]
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		code := make([]byte, site.Offset+3)
		_, err = f.ReadAt(code, int64(site.FuncOffset))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		// SYSCALL (0f 05); CMP RAX, imm32 (48 3d 01 f0 ff ff); JBE rel8 (76 xx).
		pre := code[site.Offset-10 : site.Offset]
		want := []byte{0x0f, 0x05, 0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, 0x76}
		if !bytes.Equal(pre[:9], want) || !bytes.Equal(code[site.Offset:], negRAX) {
			t.Errorf("%s: bytes before the site % x, at it % x", p, pre, code[site.Offset:])
		}
	}
}

func TestResolveGoToolRefuses(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	sh, _ = filepath.EvalSymlinks(sh)
	for _, tt := range []struct{ name, path, want string }{
		{"script", script, "not an ELF executable"},
		{"C binary", sh, "no Go build information"},
		{"missing", filepath.Join(dir, "nope"), "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ResolveGoTool(tt.path)
			if !errors.Is(err, ErrNotProbeable) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("ResolveGoTool(%s) = %v, want ErrNotProbeable naming the file and %q", tt.path, err, tt.want)
			}
		})
	}
}

// TestErrorBranches: only the exact sequence is accepted; anything that
// would make the probe read a changed RAX is refused.
func TestErrorBranches(t *testing.T) {
	const (
		syscallOp = "\x0f\x05"
		cmp       = "\x48\x3d\x01\xf0\xff\xff" // CMP RAX, $-4095
		jbe       = "\x76\x15"
		neg       = "\x48\xf7\xd8"
		ret       = "\xc3"
	)
	tests := []struct {
		name string
		code string
		want []uint64
		err  string
	}{
		{"go1.19 and later", syscallOp + cmp + jbe + neg + ret, []uint64{10}, ""},
		{"store first (old syscall package)", syscallOp + cmp + jbe + "\x48\xc7\x44\x24\x38\xff\xff\xff\xff" + neg + ret, []uint64{10}, ""},
		{"no syscall", neg + ret, nil, ""},
		{"other compare", syscallOp + "\x48\x3d\x00\xf0\xff\xff" + jbe + neg + ret, nil, "not CMP RAX, $-4095"},
		{"other jump", syscallOp + cmp + "\x74\x15" + neg + ret, nil, "not JBE"},
		{"RAX overwritten", syscallOp + cmp + jbe + "\x48\xc7\xc0\xff\xff\xff\xff" + ret, nil, "changes RAX"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := errorBranches([]byte(tt.code))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("errorBranches = %v, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || len(got) != len(tt.want) || (len(got) == 1 && got[0] != tt.want[0]) {
				t.Fatalf("errorBranches = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
