package secret

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("SECRET_TEST_SET", "s3cr3t-env")
	t.Setenv("SECRET_TEST_EMPTY", "")
	tests := []struct {
		name    string
		src     Source
		want    string
		wantErr string
	}{
		{"file trims newline", Source{File: write("tok", "s3cr3t-file\n")}, "s3cr3t-file", ""},
		{"env", Source{Env: "SECRET_TEST_SET"}, "s3cr3t-env", ""},
		{"none", Source{}, "", "set file or env"},
		{"both", Source{File: "x", Env: "Y"}, "", "only one"},
		{"env unset", Source{Env: "SECRET_TEST_UNSET_XYZ"}, "", "SECRET_TEST_UNSET_XYZ is not set"},
		{"env empty", Source{Env: "SECRET_TEST_EMPTY"}, "", "empty"},
		{"file missing", Source{File: filepath.Join(dir, "missing")}, "", "no such file"},
		{"file empty", Source{File: write("empty", "\n")}, "", "empty"},
		{"file too large", Source{File: write("big", strings.Repeat("x", maxSize+1))}, "", "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.src.Load()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load() err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Fatalf("error leaks the secret: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Load() = %q, %v; want %q", got, err, tt.want)
			}
			if strings.Contains(tt.src.String(), "s3cr3t") {
				t.Fatalf("String() leaks the secret: %s", tt.src)
			}
		})
	}
}
