package build

import (
	"github.com/gopatrol/gopatrol/agent/check"
)

// scratch is a scratch directory of the target (check.Scratch) where a
// check writes the program it builds, with an Env whose commands run in
// it.
type scratch struct {
	*check.Scratch
	Env *check.Env
}

// newScratch makes a scratch directory in the target's TMPDIR (else /tmp),
// owned by the build user so that the go command running as that user can
// write its outputs there.
func newScratch(env *check.Env, prefix string) (*scratch, error) {
	s, err := env.Target.NewScratch("", prefix)
	if err != nil {
		return nil, err
	}
	t := *env.Target
	t.Dir = s.Dir
	return &scratch{Scratch: s, Env: &check.Env{Target: &t, Toolchain: env.Toolchain}}, nil
}
