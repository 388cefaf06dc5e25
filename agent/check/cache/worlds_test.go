package cache

import (
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

// When the go command answers nothing at all (an unknown GOEXPERIMENT
// stops it before it reads a variable), the cache checks still run, on
// the caches located as the go command would locate them.
func TestCachesWithoutGoEnv(t *testing.T) {
	checktest.RunCases(t, Checks(), []checktest.Case{
		{Name: "healthy caches, go env fails", ID: "gocache.writable", Setup: func(t *testing.T, w *checktest.World) []string {
			w.Setenv("GOEXPERIMENT=bogusexp")
			return []string{w.Getenv("GOCACHE"), "located from the environment"}
		}, Want: check.Pass},
		{Name: "relative GOCACHE, go env fails", ID: "gocache.writable", Setup: func(t *testing.T, w *checktest.World) []string {
			w.Setenv("GOEXPERIMENT=bogusexp", "GOCACHE=relcache")
			return []string{"relcache"}
		}, Want: check.Fail},
		{Name: "module cache, go env fails", ID: "modcache.writable", Setup: func(t *testing.T, w *checktest.World) []string {
			w.Setenv("GOEXPERIMENT=bogusexp")
			return []string{w.Getenv("GOMODCACHE")}
		}, Want: check.Pass},
	})
}
