package access

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// world returns a target as the current user and a 0755 scratch directory
// that nobody can reach (t.TempDir's parent is 0700).
func world(t *testing.T) (*check.Target, string) {
	t.Helper()
	tgt, err := check.LocalTarget()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "probetest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("umount", "-l", filepath.Join(dir, "mnt")).Run()
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return tgt, dir
}

func asNobody(t *testing.T, tgt *check.Target) *check.Target {
	t.Helper()
	testgate.Root(t, "probe as nobody")
	u, err := tgt.LookupUser("nobody")
	if err != nil {
		t.Fatal(err)
	}
	c := *tgt
	c.User = u
	return &c
}

func empty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".gopatrol-probe-") {
			t.Errorf("probe left %s behind", filepath.Join(dir, e.Name()))
		}
	}
}

func TestWritable(t *testing.T) {
	tests := []struct {
		name  string
		other bool
		setup func(t *testing.T, dir string) string
		errno string // "" means writable
	}{
		{"own directory", false, func(t *testing.T, dir string) string { return checktest.Mkdir(t, filepath.Join(dir, "own"), 0o755) }, ""},
		{"missing directory", false, func(t *testing.T, dir string) string { return filepath.Join(dir, "missing") }, "ENOENT"},
		{"root-owned 0755 as nobody", true, func(t *testing.T, dir string) string { return checktest.Mkdir(t, filepath.Join(dir, "rootdir"), 0o755) }, "EACCES"},
		{"ACL grants nobody", true, func(t *testing.T, dir string) string {
			p := checktest.Mkdir(t, filepath.Join(dir, "acl"), 0o700)
			if out, err := exec.Command("setfacl", "-m", "u:nobody:rwx", p).CombinedOutput(); err != nil {
				testgate.Missing(t, "setfacl: %v: %s", err, out)
			}
			return p
		}, ""},
		{"read-only mount", true, func(t *testing.T, dir string) string {
			return checktest.MountTmpfs(t, filepath.Join(dir, "mnt"), "ro,mode=1777")
		}, "EROFS"},
		{"full filesystem", false, func(t *testing.T, dir string) string {
			testgate.Root(t, "mount")
			mnt := checktest.MountTmpfs(t, filepath.Join(dir, "mnt"), "size=4k")
			os.WriteFile(filepath.Join(mnt, "fill"), make([]byte, 4096), 0o644)
			return mnt
		}, "ENOSPC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tgt, dir := world(t)
			if tt.other {
				tgt = asNobody(t, tgt)
			}
			p := tt.setup(t, dir)
			expectProbe(t, "Writable", p, Writable(context.Background(), tgt, p), tt.errno)
			if _, serr := os.Stat(p); serr == nil {
				empty(t, p)
			}
		})
	}
}

// The switched credentials stay on the probe's thread: the rest of the
// process keeps its own.
func TestCredentialsDoNotLeak(t *testing.T) {
	tgt, dir := world(t)
	nobody := asNobody(t, tgt)
	locked := checktest.Mkdir(t, filepath.Join(dir, "locked"), 0o700)
	for range 20 {
		if err := Writable(context.Background(), nobody, locked); err == nil {
			t.Fatal("nobody could write a root 0700 directory")
		}
	}
	for range 20 {
		if err := os.WriteFile(filepath.Join(locked, "f"), nil, 0o600); err != nil {
			t.Fatalf("this process lost its credentials: %v", err)
		}
		if err := Writable(context.Background(), tgt, locked); err != nil {
			t.Fatalf("as self: %v", err)
		}
	}
}

func TestTimeoutLeavesNothing(t *testing.T) {
	tgt, dir := world(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	Writable(ctx, tgt, dir)
	Executable(ctx, tgt, dir)
	deadline := time.Now().Add(2 * time.Second)
	for {
		ents, _ := os.ReadDir(dir)
		if len(ents) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind after cancel: %v", ents)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExecutable(t *testing.T) {
	tests := []struct {
		name  string
		other bool
		setup func(t *testing.T, dir string) string
		errno string
	}{
		{"own directory", false, func(t *testing.T, dir string) string { return checktest.Mkdir(t, filepath.Join(dir, "own"), 0o755) }, ""},
		{"0755 as nobody", true, func(t *testing.T, dir string) string { return checktest.Mkdir(t, filepath.Join(dir, "open"), 0o755) }, ""},
		{"0700 as nobody", true, func(t *testing.T, dir string) string { return checktest.Mkdir(t, filepath.Join(dir, "closed"), 0o700) }, "EACCES"},
		{"noexec mount", true, func(t *testing.T, dir string) string {
			return checktest.MountTmpfs(t, filepath.Join(dir, "mnt"), "noexec,mode=0755")
		}, "EACCES"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tgt, dir := world(t)
			if tt.other {
				tgt = asNobody(t, tgt)
			}
			p := tt.setup(t, dir)
			expectProbe(t, "Executable", p, Executable(context.Background(), tgt, p), tt.errno)
			empty(t, p)
		})
	}
}

func BenchmarkWritable(b *testing.B) {
	tgt, err := check.LocalTarget()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	b.Run("self", func(b *testing.B) {
		for b.Loop() {
			if err := Writable(context.Background(), tgt, dir); err != nil {
				b.Fatal(err)
			}
		}
	})
	if os.Geteuid() == 0 {
		u, err := tgt.LookupUser("nobody")
		if err != nil {
			b.Fatal(err)
		}
		other := *tgt
		other.User = u
		os.Chmod(dir, 0o777)
		os.Chmod(filepath.Dir(dir), 0o755)
		b.Run("nobody", func(b *testing.B) {
			for b.Loop() {
				if err := Writable(context.Background(), &other, dir); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("nobody-via-sh", func(b *testing.B) {
			// The alternative this package avoids, for comparison.
			for b.Loop() {
				cmd := other.Command(context.Background(), "/bin/sh", "-c", `f=$(mktemp -p "$1") && echo x >"$f" && rm "$f"`, "sh", dir)
				cmd.Dir = "/"
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%v: %s", err, out)
				}
			}
		})
	}
	b.Run("executable-self", func(b *testing.B) {
		for b.Loop() {
			if err := Executable(context.Background(), tgt, dir); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// expectProbe checks the result of probe(p): nil when errno is "", else a
// probe *Error with that errno naming p.
func expectProbe(t *testing.T, probe, p string, err error, errno string) {
	t.Helper()
	t.Logf("%s(%s) = %v", probe, p, err)
	if errno == "" {
		if err != nil {
			t.Fatalf("%s(%s): want success, got %v", probe, p, err)
		}
		return
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Errno() != errno || !strings.Contains(err.Error(), p) {
		t.Fatalf("%s(%s): want a probe error with %s naming %s, got %v", probe, p, errno, p, err)
	}
}

// A probe as another user must not end its thread: ending a thread
// SIGKILLs every child it started with Pdeathsig (golang/go#27505), and
// the runtime may have started another check's command on that thread
// before the probe ran there. Children started while probes run must all
// live to exit on their own.
func TestProbesKillNoChild(t *testing.T) {
	tgt, dir := world(t)
	nobody := asNobody(t, tgt)
	locked := checktest.Mkdir(t, filepath.Join(dir, "locked"), 0o700)
	sleep := testgate.Tool(t, "sleep", "coreutils")
	errs := make(chan error, 200)
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			cmd := tgt.Command(context.Background(), sleep, "0.2")
			if err := cmd.Start(); err != nil {
				errs <- err
				return
			}
			if err := cmd.Wait(); err != nil {
				errs <- fmt.Errorf("child %d: %w", i, err)
			}
		})
		wg.Go(func() { Writable(context.Background(), nobody, locked) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
