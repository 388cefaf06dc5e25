package tlsprobe

import (
	"testing"

	"github.com/gopatrol/gopatrol/bpf/internal/objstamp"
)

// TestObjectsFresh fails when the committed object does not come from the
// committed C sources and directive: a hash recorded by `go generate`
// changed (edit without `make generate`).
func TestObjectsFresh(t *testing.T) {
	err := objstamp.Verify("tls.stamp", []string{"gen.go", "../c/tls.bpf.c", "../c/gopatrol.h", "../c/vmlinux.h", "../c/include"})
	if err != nil {
		t.Fatal(err)
	}
}
