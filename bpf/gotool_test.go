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
