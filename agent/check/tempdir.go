package check

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Scratch is a temporary directory on the target, owned by the build user
// so that a go command running as that user can write there. Host is where
// this process opens it, Dir where the target's commands see it.
type Scratch struct {
	Host string
	Dir  string
	t    *Target
}

// TempBase is the directory where the target's temporary files go: its
// TMPDIR when that is absolute, else /tmp.
func (t *Target) TempBase() string {
	if base := t.Getenv("TMPDIR"); filepath.IsAbs(base) {
		return base
	}
	return "/tmp"
}

// NewScratch makes a scratch directory named prefix* in base (a directory
// of the target; TempBase when empty).
func (t *Target) NewScratch(base, prefix string) (*Scratch, error) {
	if base == "" {
		base = t.TempBase()
	}
	host, err := os.MkdirTemp(t.Path(base), prefix)
	if err != nil {
		return nil, fmt.Errorf("create a scratch directory in %s: %w (make it writable, or set TMPDIR to a writable directory)", base, err)
	}
	s := &Scratch{Host: host, Dir: filepath.Join(base, filepath.Base(host)), t: t}
	if err := s.chown(host); err != nil {
		s.Remove()
		return nil, fmt.Errorf("hand scratch directory %s to %s: %w", host, t.UserName(), err)
	}
	return s, nil
}

func (s *Scratch) chown(p string) error {
	if !s.t.AsOther() {
		return nil
	}
	return os.Lchown(p, int(s.t.User.UID), int(s.t.User.GID))
}

// Write writes files (name to content) into the directory, owned by the
// build user; a content starting with "#!" is made executable.
func (s *Scratch) Write(files map[string]string) error {
	for name, body := range files {
		p := filepath.Join(s.Host, name)
		mode := os.FileMode(0o644)
		if strings.HasPrefix(body, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := s.chown(p); err != nil {
			return fmt.Errorf("hand %s to %s: %w", p, s.t.UserName(), err)
		}
	}
	return nil
}

// Remove deletes the directory and whatever was left in it.
func (s *Scratch) Remove() { _ = os.RemoveAll(s.Host) }

// GoCommand prepares the toolchain's go binary to run on the target with
// extra environment assignments. Unless extraEnv sets GOTMPDIR, the go
// command's work directories (go-build*) go into a scratch directory of
// their own inside the GOTMPDIR the user's builds would use; the returned
// done removes it, and must be called once the command has ended, on every
// path: a go command killed at a deadline does not clean up after itself.
func (e *Env) GoCommand(ctx context.Context, extraEnv []string, args ...string) (cmd *exec.Cmd, done func(), err error) {
	done = func() {}
	if !slices.ContainsFunc(extraEnv, func(kv string) bool { return strings.HasPrefix(kv, "GOTMPDIR=") }) {
		base := e.Toolchain.Get("GOTMPDIR")
		if !filepath.IsAbs(base) {
			base = ""
		}
		s, err := e.Target.NewScratch(base, "gopatrol-gotmp-")
		if err != nil {
			return nil, done, fmt.Errorf("GOTMPDIR for go %s: %w", strings.Join(args, " "), err)
		}
		extraEnv = append(slices.Clone(extraEnv), "GOTMPDIR="+s.Dir)
		done = s.Remove
	}
	return e.Target.WithEnv(extraEnv...).Command(ctx, e.Toolchain.Go, args...), done, nil
}

// Go runs the toolchain's go binary on the target with extra environment
// assignments and returns its combined output, capped at MaxOutput, in its
// own GOTMPDIR (see GoCommand). Checks use it for every go command so that
// they all see the same binary, environment and user.
func (e *Env) Go(ctx context.Context, extraEnv []string, args ...string) ([]byte, error) {
	cmd, done, err := e.GoCommand(ctx, extraEnv, args...)
	if err != nil {
		return nil, err
	}
	defer done()
	out, err := CombinedOutput(cmd)
	if err != nil {
		return out, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, FirstLine(string(out)))
	}
	return out, nil
}
