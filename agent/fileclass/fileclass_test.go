package fileclass

import (
	"slices"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/bpf"
)

// Every directory the doctor resolves has a class, named like its
// variable in lower case (the documented gopatrol.file.class value).
func TestEveryDirVarHasItsClass(t *testing.T) {
	for _, v := range check.DirVars {
		c, ok := classOf[v]
		if !ok {
			t.Errorf("%s: no sensor class", v)
			continue
		}
		if c.String() != strings.ToLower(v) {
			t.Errorf("%s: class %q, want %q", v, c, strings.ToLower(v))
		}
	}
	if len(classOf) != len(check.DirVars) {
		t.Errorf("%d classes for %d variables", len(classOf), len(check.DirVars))
	}
}

func TestOf(t *testing.T) {
	tc := &check.Toolchain{Env: map[string]string{"GOROOT": "/usr/local/go", "GOPATH": "/home/u/go", "GOCACHE": "/home/u/.cache/go-build", "GOMODCACHE": "/home/u/go/pkg/mod", "GOTMPDIR": ""}}
	got := Of(tc)
	want := map[bpf.Class][]string{
		bpf.ClassGOROOT: {"/usr/local/go"}, bpf.ClassGOBIN: {"/home/u/go/bin"},
		bpf.ClassGOCACHE: {"/home/u/.cache/go-build"}, bpf.ClassGOMODCACHE: {"/home/u/go/pkg/mod"},
	}
	if len(got) != len(want) {
		t.Errorf("Of = %v, want %v", got, want)
	}
	for c, dirs := range want {
		if !slices.Equal(got[c], dirs) {
			t.Errorf("class %s: %v, want %v", c, got[c], dirs)
		}
	}
	if n := len(Of(&check.Toolchain{})); n != 0 {
		t.Errorf("unresolved toolchain: %d classes, want none", n)
	}
}
