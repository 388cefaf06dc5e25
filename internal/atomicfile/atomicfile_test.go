package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	tests := []struct {
		data string
		perm os.FileMode
	}{
		{"first", 0o600},
		{"second, longer than the first", 0o644},
		{"", 0o640},
	}
	for _, tt := range tests {
		if err := WriteFile(path, []byte(tt.data), tt.perm); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != tt.data {
			t.Fatalf("after WriteFile(%q): %q, %v", tt.data, got, err)
		}
		fi, _ := os.Stat(path)
		if fi.Mode().Perm() != tt.perm {
			t.Errorf("mode %v, want %v", fi.Mode().Perm(), tt.perm)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

// TestWriteFileFailureKeepsOld: a write that cannot complete (the target
// is a directory, so the rename fails) leaves the old content and no
// temporary file.
func TestWriteFileFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "busy")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(target, []byte("new"), 0o644)
	if err == nil || !strings.Contains(err.Error(), target) {
		t.Fatalf("err = %v, want one naming %s", err, target)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after a failed write, want only the target", len(entries))
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "file")
	if err := WriteFile(path, nil, 0o644); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want one naming %s", err, path)
	}
}

// An interrupted write's temporary file is removed; the files and the
// directories beside it are not.
func TestRemoveLeftovers(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "state.json")
	if err := WriteFile(keep, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, TempPrefix+"state.json-123"), []byte("{"), 0o600)
	os.Mkdir(filepath.Join(dir, TempPrefix+"dir"), 0o700)
	n, err := RemoveLeftovers(dir)
	if err != nil || n != 1 {
		t.Fatalf("RemoveLeftovers: %d, %v; want 1 removed", n, err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 2 {
		t.Errorf("left %v, want state.json and the directory", left)
	}
	if n, err := RemoveLeftovers(filepath.Join(dir, "absent")); n != 0 || err != nil {
		t.Errorf("a missing directory: %d, %v; want nothing to do", n, err)
	}
}
