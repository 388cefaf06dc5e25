package seclabel

import (
	"context"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

func BenchmarkSELinux(b *testing.B) {
	w := checktest.New(b)
	env := w.Env()
	cs := Checks()
	for b.Loop() {
		check.Runner{}.Run(context.Background(), env, cs)
	}
}
