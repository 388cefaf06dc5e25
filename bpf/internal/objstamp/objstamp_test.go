package objstamp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVerify(t *testing.T) {
	tests := []struct {
		name   string
		change func(dir string)
		extra  []string // required inputs beyond the recorded ones
		want   string
	}{
		{"fresh", func(string) {}, nil, ""},
		{"source edited", func(d string) { os.WriteFile(filepath.Join(d, "c/x.bpf.c"), []byte("int y;"), 0o644) }, nil, "c/x.bpf.c changed"},
		{"header edited", func(d string) { os.WriteFile(filepath.Join(d, "c/include/h.h"), []byte("//"), 0o644) }, nil, "c/include/h.h changed"},
		{"object replaced", func(d string) { os.WriteFile(filepath.Join(d, "x.o"), []byte("other"), 0o644) }, nil, "x.o changed"},
		{"object missing", func(d string) { os.Remove(filepath.Join(d, "x.o")) }, nil, "x.o"},
		{"new header not recorded", func(d string) { os.WriteFile(filepath.Join(d, "c/include/new.h"), nil, 0o644) }, nil, "c/include/new.h is not recorded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range map[string]string{"c/x.bpf.c": "int x;", "c/include/h.h": "#define H", "x.o": "ELF"} {
				p := filepath.Join(dir, name)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			inputs := []string{"c/x.bpf.c", "c/include"}
			st, err := Compute(dir, "14", inputs, []string{"x.o"})
			if err != nil {
				t.Fatal(err)
			}
			stamp := filepath.Join(dir, "x.stamp")
			if err := st.Write(stamp); err != nil {
				t.Fatal(err)
			}
			tt.change(dir)
			err = Verify(stamp, inputs)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Verify: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Verify: %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

func TestReadRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s")
	os.WriteFile(p, []byte("clang 14\nbogus line here now\n"), 0o644)
	if _, err := Read(p); err == nil || !strings.Contains(err.Error(), "malformed line") {
		t.Errorf("Read of a malformed stamp: %v", err)
	}
}
