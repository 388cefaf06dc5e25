package check

import (
	"errors"
	"testing"
)

func TestSince(t *testing.T) {
	for _, tt := range []struct {
		name string
		tc   *Toolchain
		want bool
	}{
		{"debian 1.19", &Toolchain{Env: map[string]string{"GOVERSION": "go1.19.8"}}, false},
		{"1.20 final patch", &Toolchain{Env: map[string]string{"GOVERSION": "go1.20.14"}}, false},
		{"1.21.0", &Toolchain{Env: map[string]string{"GOVERSION": "go1.21.0"}}, true},
		{"1.21 rc", &Toolchain{Env: map[string]string{"GOVERSION": "go1.21rc2"}}, true},
		{"newer", &Toolchain{Env: map[string]string{"GOVERSION": "go1.27.4"}}, true},
		{"development build", &Toolchain{Env: map[string]string{"GOVERSION": "devel go1.27-1a2b3c Mon"}}, true},
		{"go env failed", &Toolchain{Err: errors.New("exit 1")}, true},
		{"no toolchain", nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tc.Since(GoEnvRelease); got != tt.want {
				t.Errorf("Since(%s) = %v for %v, want %v", GoEnvRelease, got, tt.tc, tt.want)
			}
		})
	}
}
