package check

import "testing"

func TestAttribute(t *testing.T) {
	words := "go: parsing $GOFLAGS: unknown flag -bogusflag"
	owner := Failf("the go command rejects the environment your builds get: %s", words).
		With("go list (real environment)", words).WithFix("go env -u GOFLAGS")
	owner.ID = "env.config"
	tests := []struct {
		name    string
		r       Result
		follows string
	}{
		{"same words", Failf("go run failed: %s", words).WithFix("run go run"), "env.config"},
		{"words in evidence", Failf("go mod verify failed before verifying").With("go mod verify", words).WithFix("x"), "env.config"},
		{"another cause", Failf("a minimal cgo program does not build: gcc: not found").WithFix("apt-get install gcc"), ""},
		{"a pass stays", Passf("fine %s", words), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.ID = "env.functional"
			out := Attribute([]Result{owner, tt.r})
			got := out[1]
			if got.Evidence[Follows] != tt.follows {
				t.Fatalf("follows %q, want %q: %s", got.Evidence[Follows], tt.follows, got.Summary)
			}
			if tt.follows != "" && got.Fix != "" {
				t.Errorf("a consequence keeps its fix %q", got.Fix)
			}
			if out[0].Fix == "" || out[0].Evidence[Follows] != "" {
				t.Errorf("the owner lost its fix or became a consequence: %+v", out[0])
			}
		})
	}
	// go.binary's `go env` failure follows from the check that explains it.
	gb := Failf("/usr/local/go/bin/go is the go command (go1.26.8), but `go env` fails: go: unknown GOEXPERIMENT x").WithFix("run `go env`")
	gb.ID = "go.binary"
	cfg := Failf("GOEXPERIMENT=x: unknown experiment").WithFix("unset GOEXPERIMENT")
	cfg.ID = "env.config"
	if out := Attribute([]Result{gb, cfg}); out[0].Evidence[Follows] != "env.config" {
		t.Errorf("go.binary does not follow env.config: %+v", out[0])
	}
}
