package sdk_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The committed probev1/*.pb.go must be what gen.sh produces from the
// .proto today: a .proto edit without `go generate` fails here.
func TestGeneratedCodeIsFresh(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("protoc not found: %v (make deps installs protobuf-compiler)", err)
		}
		t.Skipf("protoc not found (apt-get install protobuf-compiler): %v", err)
	}
	out := t.TempDir()
	cmd := exec.Command("sh", "gen.sh", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sh gen.sh %s: %v\n%s", out, err, b)
	}
	for _, name := range []string{"probe.pb.go", "probe_grpc.pb.go"} {
		fresh, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(filepath.Join("probev1", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fresh, committed) {
			t.Errorf("plugins/sdk/probev1/%s is stale: run `go generate ./plugins/sdk/...` and commit the result", name)
		}
	}
}
