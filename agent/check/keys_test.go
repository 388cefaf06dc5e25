package check

import (
	"slices"
	"testing"
)

func TestEvidenceKeys(t *testing.T) {
	tests := []struct {
		ev   []string
		want []string
	}{
		{[]string{"corrupt.10", "corrupt.2", "corrupt.1"}, []string{"corrupt.1", "corrupt.2", "corrupt.10"}},
		{[]string{"go.10", "go.9", "go", "go.real"}, []string{"go", "go.9", "go.10", "go.real"}},
		{[]string{"GOPATH[10]", "GOPATH[2]", "GOPATH"}, []string{"GOPATH", "GOPATH[2]", "GOPATH[10]"}},
		{[]string{"a02", "a2", "a1"}, []string{"a1", "a2", "a02"}},
		{[]string{"b", "a", "a1b", "a1a"}, []string{"a", "a1a", "a1b", "b"}},
	}
	for _, tt := range tests {
		ev := map[string]string{}
		for _, k := range tt.ev {
			ev[k] = "x"
		}
		if got := EvidenceKeys(ev); !slices.Equal(got, tt.want) {
			t.Errorf("EvidenceKeys(%v) = %v, want %v", tt.ev, got, tt.want)
		}
	}
}
