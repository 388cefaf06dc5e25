package bpf

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/bpf/bpftest"
	"github.com/gopatrol/gopatrol/bpf/internal/objstamp"
)

// TestObjectsFresh fails when the committed object does not come from the
// committed C sources: a hash recorded by `go generate` changed.
func TestObjectsFresh(t *testing.T) {
	err := objstamp.Verify("sensor.stamp", []string{"gen.go", "c/sensor.bpf.c", "c/gopatrol.h", "c/vmlinux.h", "c/include"})
	if err != nil {
		t.Fatal(err)
	}
}

// TestObjectsReproducible recompiles the sensor with the directive of
// gen.go into a temporary directory and compares the bytes with the
// committed object. Byte equality needs the same clang major (Debian 12's
// is 14), so other compilers skip; the hash check above still runs.
func TestObjectsReproducible(t *testing.T) {
	st, err := objstamp.Read("sensor.stamp")
	if err != nil {
		t.Fatal(err)
	}
	if got := objstamp.ClangMajor("clang"); got != st.ClangMajor {
		bpftest.Need(t, "clang "+st.ClangMajor+", the objects' compiler", fmt.Errorf("clang major here is %q; bytes are only comparable with the same compiler", got))
	}
	src, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, line := range strings.Split(string(src), "\n") {
		if rest, ok := strings.CutPrefix(line, "//go:generate go tool bpf2go "); ok {
			args = splitQuoted(rest)
			break
		}
	}
	if args == nil {
		t.Fatal("gen.go has no bpf2go directive")
	}
	tool, err := exec.Command("go", "tool", "-n", "bpf2go").Output()
	if err != nil {
		t.Fatalf("go tool -n bpf2go: %v", err)
	}
	tmp := t.TempDir()
	if err := os.CopyFS(filepath.Join(tmp, "c"), os.DirFS("c")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(strings.TrimSpace(string(tool)), args...)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOPACKAGE=bpf")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bpf2go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for obj := range st.Objects {
		want, err := os.ReadFile(obj)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(tmp, obj))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: recompiled object differs from the committed one (%d vs %d bytes): run `make generate` and commit", obj, len(got), len(want))
		}
	}
}

// splitQuoted splits a go:generate line the way go generate does for
// double-quoted words.
func splitQuoted(s string) []string {
	var out []string
	var cur strings.Builder
	in, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			in, have = !in, true
		case r == ' ' && !in:
			if have {
				out = append(out, cur.String())
			}
			cur.Reset()
			have = false
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}
