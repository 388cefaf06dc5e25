package tlsprobe

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// goBinary is the go command of the toolchain running the tests.
func goBinary(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "bin", "go")
}

// TestFindHandshakeRETsGoBinary checks the RETs found in the real go binary
// against an independent disassembler (go tool objdump) and against the
// file's bytes at the offsets the uprobes will use.
func TestFindHandshakeRETsGoBinary(t *testing.T) {
	goBin := goBinary(t)
	b, err := ResolveGo(goBin)
	if err != nil {
		t.Fatalf("ResolveGo(%s): %v", goBin, err)
	}
	entry, rets, err := FindHandshakeRETs(goBin)
	if err != nil || entry != b.Handshake.FileOffset || len(rets) != len(b.Handshake.Rets) {
		t.Fatalf("FindHandshakeRETs(%s) = %#x, %v, %v; ResolveGo said %#x, %v", goBin, entry, rets, err, b.Handshake.FileOffset, b.Handshake.Rets)
	}
	if len(rets) == 0 {
		t.Fatalf("no RETs in %s of %s", HandshakeSymbol, goBin)
	}

	f, err := os.Open(goBin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range rets {
		var op [1]byte
		if _, err := f.ReadAt(op[:], int64(entry+r)); err != nil {
			t.Fatal(err)
		}
		if op[0] != 0xc3 {
			t.Errorf("%s+%#x: file byte at offset %#x is %#x, want RET 0xc3", HandshakeSymbol, r, entry+r, op[0])
		}
	}

	// go tool objdump lines: "  file.go:123  0x71b4a0  c3  RET".
	out, err := exec.Command("go", "tool", "objdump", "-s", "^"+regexp.QuoteMeta(HandshakeSymbol)+"$", goBin).Output()
	if err != nil {
		t.Fatalf("go tool objdump %s: %v", goBin, err)
	}
	var want []uint64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 4 && fields[len(fields)-1] == "RET" {
			addr, err := strconv.ParseUint(strings.TrimPrefix(fields[1], "0x"), 16, 64)
			if err != nil {
				t.Fatalf("objdump line %q: %v", sc.Text(), err)
			}
			want = append(want, addr-b.Handshake.Address)
		}
	}
	if !equalOffsets(rets, want) {
		t.Errorf("RET offsets of %s in %s = %#x, go tool objdump finds %#x", HandshakeSymbol, goBin, rets, want)
	}
	if b.Alert == nil {
		t.Errorf("%s not resolved in %s: failed handshakes would lose their alert", AlertSymbol, goBin)
	}
}

func equalOffsets(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// buildTLSClient builds a small Go program that uses crypto/tls as a client.
func buildTLSClient(t *testing.T, ldflags string) string {
	t.Helper()
	dir := t.TempDir()
	src := `package main

import (
	"crypto/tls"
	"os"
)

func main() {
	c, err := tls.Dial("tcp", os.Args[1], &tls.Config{ServerName: "localhost"})
	if err == nil {
		c.Close()
	}
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module tlsclient\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tlsclient")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags="+ldflags, "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOTOOLCHAIN=local", "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestResolveGoRefuses(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notelf")
	if err := os.WriteFile(text, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	sh, _ = filepath.EvalSymlinks(sh)
	compile := filepath.Join(filepath.Dir(goBinary(t)), "..", "pkg", "tool", "linux_amd64", "compile")

	tests := []struct {
		name, path, want string
	}{
		{"script", text, "not an ELF executable"},
		{"C binary", sh, "no Go build information"},
		{"Go without crypto/tls", compile, "symbol " + HandshakeSymbol + " not found"},
		{"missing", filepath.Join(dir, "nope"), "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ResolveGo(tt.path)
			if err == nil {
				t.Fatalf("ResolveGo(%s) = %+v, want refusal", tt.path, b)
			}
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ResolveGo(%s) error %q, want ErrRefused mentioning %q", tt.path, err, tt.want)
			}
			if tt.name != "missing" && !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error %q does not name %s", err, tt.path)
			}
		})
	}

	// Without an ELF symbol table, Go's function table finds the same
	// function; the RETs are the same.
	t.Run("stripped build resolves as unstripped", func(t *testing.T) {
		full, err := ResolveGo(buildTLSClient(t, ""))
		if err != nil {
			t.Fatalf("ResolveGo unstripped: %v", err)
		}
		stripped, err := ResolveGo(buildTLSClient(t, "-s -w"))
		if err != nil {
			t.Fatalf("ResolveGo of the same program stripped: %v", err)
		}
		if full.Handshake.FileOffset != stripped.Handshake.FileOffset || !equalOffsets(full.Handshake.Rets, stripped.Handshake.Rets) {
			t.Errorf("unstripped %#x %v, stripped %#x %v", full.Handshake.FileOffset, full.Handshake.Rets, stripped.Handshake.FileOffset, stripped.Handshake.Rets)
		}
	})
}

func TestCheckGoVersion(t *testing.T) {
	tests := []struct {
		v  string
		ok bool
	}{
		{"go1.26.8", true},
		{"go1.17", true},
		{"go1.21rc2", true},
		{"go1.16.15", false},
		{"go1.4", false},
		{"devel +abcdef", false},
		{"", false},
		{"go2.0", false},
		{"gox.y", false},
	}
	for _, tt := range tests {
		if err := checkGoVersion(tt.v); (err == nil) != tt.ok {
			t.Errorf("checkGoVersion(%q) = %v, want ok=%v", tt.v, err, tt.ok)
		}
	}
}
