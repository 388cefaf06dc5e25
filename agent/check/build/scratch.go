package build

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gopatrol/gopatrol/agent/check"
)

// scratch is a temporary directory on the target where a check writes the
// program it builds. Host is where this process opens it, Dir where the
// target's commands see it, Env an Env whose commands run in it.
type scratch struct {
	Host string
	Dir  string
	Env  *check.Env
}

// newScratch makes a scratch directory in the target's TMPDIR (else /tmp),
// owned by the build user so that the go command running as that user can
// write its outputs there.
func newScratch(env *check.Env, prefix string) (*scratch, error) {
	base := env.Target.Getenv("TMPDIR")
	if !filepath.IsAbs(base) {
		base = "/tmp"
	}
	host, err := os.MkdirTemp(env.Target.Path(base), prefix)
	if err != nil {
		return nil, fmt.Errorf("create scratch directory in %s: %w (set TMPDIR to a writable directory)", base, err)
	}
	s := &scratch{Host: host, Dir: filepath.Join(base, filepath.Base(host))}
	if env.Target.AsOther() {
		if err := os.Chown(host, int(env.Target.User.UID), int(env.Target.User.GID)); err != nil {
			s.Remove()
			return nil, fmt.Errorf("hand scratch directory %s to %s: %w", host, env.Target.User.Name, err)
		}
	}
	t := *env.Target
	t.Dir = s.Dir
	s.Env = &check.Env{Target: &t, Toolchain: env.Toolchain}
	return s, nil
}

// Write writes files (name to content) into the scratch directory.
func (s *scratch) Write(files map[string]string) error {
	for name, content := range files {
		p := filepath.Join(s.Host, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

// Remove deletes the scratch directory and what the build left in it.
func (s *scratch) Remove() { _ = os.RemoveAll(s.Host) }
