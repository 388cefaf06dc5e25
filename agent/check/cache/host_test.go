package cache

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

// modcache.links against a host mounted at a directory of its own (the
// agent's /host): GOMODCACHE is an absolute link that only resolves inside
// the host, and a dangling link there is the host's.
func TestLinksInMountedHost(t *testing.T) {
	host := t.TempDir()
	checktest.Mkdir(t, filepath.Join(host, "ssd", "modcache", "cache", "download"), 0o755)
	checktest.Symlink(t, "/ssd/modcache", filepath.Join(host, "home", "u", "go", "pkg", "mod"))
	checktest.Symlink(t, "/ssd/gone", filepath.Join(host, "ssd", "modcache", "example.com"))
	env := &check.Env{
		Target:    &check.Target{Root: host},
		Toolchain: &check.Toolchain{Env: map[string]string{"GOPATH": "/home/u/go", "GOMODCACHE": "/home/u/go/pkg/mod"}},
	}
	res := links(context.Background(), env, env.Toolchain.Env)
	checktest.Expect(t, res, check.Fail, "/home/u/go/pkg/mod/example.com", "/ssd/gone")
	if got := res.Evidence["GOMODCACHE resolved"]; got != "/ssd/modcache" {
		t.Errorf("GOMODCACHE resolved = %q, want the host's /ssd/modcache", got)
	}
}
