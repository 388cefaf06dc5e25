package probev1_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The committed *.pb.go must be what gen.sh produces from the .proto today:
// a .proto edit without `go generate` fails here.
func TestGeneratedCodeIsFresh(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("GOPATROL_REQUIRE_BPF") == "1" {
			t.Fatalf("protoc not found: %v (make deps installs protobuf-compiler)", err)
		}
		t.Skipf("protoc not found (apt-get install protobuf-compiler): %v", err)
	}
	out := t.TempDir()
	if b, err := exec.Command("sh", "gen.sh", out).CombinedOutput(); err != nil {
		t.Fatalf("sh gen.sh %s: %v\n%s", out, err, b)
	}
	for _, name := range []string{"probe.pb.go", "probe_grpc.pb.go"} {
		fresh, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fresh, committed) {
			t.Errorf("plugins/internal/probev1/%s is stale: run `go generate ./plugins/internal/...` and commit the result", name)
		}
	}
}
