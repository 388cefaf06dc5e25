package inventory_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/inventory"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// secret is the value of a variable no one should ever store.
const secret = "s3cr3t-ghp_inventoryTestToken0123456789"

// fakeRoot is a Go root whose bin/go is a copy of sleep: a process that
// lives while the test reads it, run from a GOROOT with a VERSION file.
func fakeRoot(t testing.TB, dir, version string) string {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		testgate.Missing(t, "sleep: %v", err)
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "go"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "VERSION"), []byte(version+"\ntime 2026-01-01T00:00:00Z\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// start runs argv with env in dir until the test ends, and returns its pid.
func start(t *testing.T, dir string, env []string, argv ...string) *exec.Cmd {
	t.Helper()
	return startB(t, dir, env, argv...)
}

func startB(t testing.TB, dir string, env []string, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	return cmd
}

// captured waits until the process shows its new executable and its
// environment (the exec is done) and captures it. /proc/PID/exe names the
// new file a moment before the new stack's environment is in place; the
// agent never sees that moment, since sched_process_exec fires after both.
func captured(t *testing.T, c *inventory.Capturer, pid int, exe string) inventory.Env {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		env, err := c.Capture(pid, uint32(os.Getuid()))
		// Every test's environment has a listed variable (PATH at least).
		if err == nil && strings.HasSuffix(env.Go, exe) && len(env.Vars) > 0 {
			return env
		}
		if time.Now().After(deadline) {
			t.Fatalf("capture of %d: %+v, %v", pid, env, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func module(t *testing.T) (root, sub string) {
	t.Helper()
	root = t.TempDir()
	sub = filepath.Join(root, "cmd", "tool")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module example.com/m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, sub
}

func TestCaptureReadsOnlyTheListedVariables(t *testing.T) {
	goroot := fakeRoot(t, t.TempDir(), "go1.99.1")
	mod, sub := module(t)
	env := []string{
		"PATH=/usr/bin:/bin", "HOME=/home/builder", "GOFLAGS=-mod=mod", "GOCACHE=/tmp/cache",
		"GOPROXY=https://builder:hunter2@proxy.example.test,direct",
		"SECRET_TOKEN=" + secret, "AWS_SECRET_ACCESS_KEY=" + secret, "GOFLAGSX=" + secret, "XGOFLAGS=" + secret,
	}
	cmd := start(t, sub, env, filepath.Join(goroot, "bin", "go"), "30")
	var c inventory.Capturer
	got := captured(t, &c, cmd.Process.Pid, "/bin/go")

	want := map[string]string{"PATH": "/usr/bin:/bin", "HOME": "/home/builder", "GOFLAGS": "-mod=mod", "GOCACHE": "/tmp/cache",
		"GOPROXY": "https://builder:***@proxy.example.test,direct"}
	if !maps.Equal(got.Vars, want) {
		t.Errorf("vars = %v, want exactly %v", got.Vars, want)
	}
	if got.Go != filepath.Join(goroot, "bin", "go") || got.GOROOT != goroot || got.Version != "go1.99.1" {
		t.Errorf("go %q goroot %q version %q, want %s/bin/go, %s, go1.99.1", got.Go, got.GOROOT, got.Version, goroot, goroot)
	}
	if got.Module != mod {
		t.Errorf("module = %q, want %q (the go.mod above the working directory)", got.Module, mod)
	}
	if got.Container.MountNS != 0 {
		t.Errorf("mount namespace %d: the test runs in the host's, want 0", got.Container.MountNS)
	}
	b, _ := json.Marshal(got)
	if strings.Contains(string(b), secret) || strings.Contains(string(b), "hunter2") {
		t.Errorf("a secret reached the captured environment: %s", b)
	}
}

func TestIDIgnoresWhatTheDoctorDoesNotSee(t *testing.T) {
	goroot := fakeRoot(t, t.TempDir(), "go1.99.1")
	mod, sub := module(t)
	base := []string{"PATH=/usr/bin:/bin", "GOFLAGS=-mod=mod"}
	var c inventory.Capturer
	capture := func(dir string, extra ...string) inventory.Env {
		cmd := start(t, dir, append(slices.Clone(base), extra...), filepath.Join(goroot, "bin", "go"), "30")
		return captured(t, &c, cmd.Process.Pid, "/bin/go")
	}
	a := capture(mod, "TERM=xterm")
	b := capture(sub, "SECRET_TOKEN="+secret, "LANG=C")
	if a.ID() != b.ID() {
		t.Errorf("other variables and the directory inside one module changed the ID: %s %+v, %s %+v", a.ID(), a, b.ID(), b)
	}
	d := capture(sub, "GOFLAGS=-mod=vendor")
	if d.ID() == a.ID() {
		t.Errorf("another GOFLAGS kept the ID %s", a.ID())
	}
	if len(a.ID()) != 12 {
		t.Errorf("ID %q: want 12 hex digits", a.ID())
	}
}

func env(uid uint32, goflags, version string) inventory.Env {
	return inventory.Env{Go: "/usr/local/go/bin/go", GOROOT: "/usr/local/go", Version: version, UID: uid,
		Vars: map[string]string{"GOFLAGS": goflags}, Module: "/src/m"}
}

func TestInventoryChanges(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	type obs struct {
		env   inventory.Env
		at    int
		kinds []string
	}
	cases := []struct {
		name  string
		limit int
		obs   []obs
		len   int
		last  inventory.Change
	}{
		{name: "seen twice is one entry", limit: 10,
			obs: []obs{{env(1000, "-mod=mod", "go1.26.8"), 0, []string{inventory.Appeared}}, {env(1000, "-mod=mod", "go1.26.8"), 1, nil}},
			len: 1},
		{name: "a new GOFLAGS in the same place is a change", limit: 10,
			obs: []obs{{env(1000, "-mod=mod", "go1.26.8"), 0, []string{inventory.Appeared}}, {env(1000, "-mod=vendor", "go1.26.8"), 1, []string{inventory.Changed}}},
			len: 2, last: inventory.Change{Kind: inventory.Changed, Fields: []string{"GOFLAGS"}}},
		{name: "another toolchain version is a change", limit: 10,
			obs: []obs{{env(1000, "", "go1.26.8"), 0, []string{inventory.Appeared}}, {env(1000, "", "go1.27.0"), 1, []string{inventory.Changed}}},
			len: 2, last: inventory.Change{Kind: inventory.Changed, Fields: []string{"version"}}},
		{name: "another user is another place", limit: 10,
			obs: []obs{{env(1000, "", "go1.26.8"), 0, []string{inventory.Appeared}}, {env(1001, "", "go1.26.8"), 1, []string{inventory.Appeared}}},
			len: 2},
		{name: "past the limit the least recently seen goes", limit: 2,
			obs: []obs{
				{env(1, "", "go1.26.8"), 0, []string{inventory.Appeared}},
				{env(2, "", "go1.26.8"), 1, []string{inventory.Appeared}},
				{env(1, "", "go1.26.8"), 2, nil},
				{env(3, "", "go1.26.8"), 3, []string{inventory.Appeared, inventory.Evicted}}},
			len: 2, last: inventory.Change{Kind: inventory.Evicted, ID: env(2, "", "go1.26.8").ID()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inv := inventory.New(inventory.Config{Limit: tc.limit})
			var all []inventory.Change
			for i, o := range tc.obs {
				_, cs := inv.Observe(o.env, at(o.at), 100+i)
				var kinds []string
				for _, c := range cs {
					kinds = append(kinds, c.Kind)
				}
				if !slices.Equal(kinds, o.kinds) {
					t.Errorf("observation %d: changes %v, want %v", i, kinds, o.kinds)
				}
				all = append(all, cs...)
			}
			if inv.Len() != tc.len {
				t.Errorf("%d entries, want %d", inv.Len(), tc.len)
			}
			if tc.last.Kind != "" {
				last := all[len(all)-1]
				if last.Kind != tc.last.Kind || (tc.last.ID != "" && last.ID != tc.last.ID) || !slices.Equal(last.Fields, tc.last.Fields) {
					t.Errorf("last change %+v, want %+v", last, tc.last)
				}
			}
			if got := inv.Changes(time.Time{}); len(got) != len(all) {
				t.Errorf("change log has %d, want %d", len(got), len(all))
			}
		})
	}
}

func TestSweepForgetsTheUnseen(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	inv := inventory.New(inventory.Config{})
	old, _ := inv.Observe(env(1, "", "go1.26.8"), t0, 1)
	recent, _ := inv.Observe(env(2, "", "go1.26.8"), t0.Add(23*time.Hour), 2)
	gone := inv.Sweep(t0.Add(25*time.Hour), 24*time.Hour)
	if len(gone) != 1 || gone[0].ID != old || gone[0].Kind != inventory.Disappeared {
		t.Fatalf("swept %+v, want %s disappeared", gone, old)
	}
	if _, ok := inv.Get(recent); !ok || inv.Len() != 1 {
		t.Errorf("the recent environment went too (len %d)", inv.Len())
	}
}

func TestStateRoundTrip(t *testing.T) {
	inv := inventory.New(inventory.Config{Limit: 5})
	now := time.Now()
	id, _ := inv.Observe(env(1000, "-mod=mod", "go1.26.8"), now, 42)
	inv.SetPatrol(id, inventory.Result{At: now, Outcome: inventory.OutcomeUnreachable, Reason: "gone"})
	p := inventory.StatePath(filepath.Join(t.TempDir(), "state"))
	if err := inventory.Save(p, inv.Snapshot(now, now.Add(-time.Hour))); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v, mode %v, want 0600", err, fi.Mode())
	}
	st, err := inventory.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	e, err := st.Find(id[:6])
	if err != nil || e.ID != id || e.Patrol == nil || e.Patrol.Outcome != inventory.OutcomeUnreachable || len(st.Changes) != 1 {
		t.Fatalf("find %s: %+v, %v; changes %v", id[:6], e, err, st.Changes)
	}
	again := inventory.New(inventory.Config{Limit: 5})
	again.Restore(st)
	if _, cs := again.Observe(env(1000, "-mod=mod", "go1.26.8"), now, 43); len(cs) != 0 || again.Len() != 1 || len(again.Changes(time.Time{})) != 1 {
		t.Errorf("after a restore, the same environment made changes %+v (len %d)", cs, again.Len())
	}
	if _, cs := again.Observe(env(1000, "-mod=vendor", "go1.26.8"), now, 44); len(cs) != 1 || cs[0].Kind != inventory.Changed || cs[0].Previous != id {
		t.Errorf("after a restore, a new GOFLAGS in the same place: %+v, want changed from %s", cs, id)
	}
	if _, err := st.Find("ffffffffffff"); err == nil || !strings.Contains(err.Error(), "agent status") {
		t.Errorf("unknown ID: %v, want an error saying where the IDs are", err)
	}
	if _, err := inventory.Load(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, inventory.ErrNoState) {
		t.Errorf("missing state: %v, want ErrNoState", err)
	}
}

// An environment in a mount namespace of its own is read through its
// root (its GOROOT is mounted only there), entered through it while a
// process lives in it, and reported unreachable once none does.
func TestMountNamespaceEnteredWhileItLives(t *testing.T) {
	testgate.Root(t, "mounts in a new mount namespace")
	unshare := testgate.Tool(t, "unshare", "util-linux")
	goroot := fakeRoot(t, t.TempDir(), "go1.98.0")
	mnt := t.TempDir() // empty here; the GOROOT inside the namespace
	script := "mount --make-rprivate / && mount --bind " + goroot + " " + mnt + " && exec " + mnt + "/bin/go 60"
	cmd := start(t, "/", []string{"PATH=/usr/bin:/bin", "GOTOOLCHAIN=local", "NOT_GO=" + secret}, unshare, "-m", "sh", "-c", script)
	var c inventory.Capturer
	got := captured(t, &c, cmd.Process.Pid, mnt+"/bin/go")
	if got.Container.MountNS == 0 || got.Version != "go1.98.0" || got.GOROOT != mnt {
		t.Fatalf("captured %+v: want its own mount namespace, GOROOT %s and go1.98.0 read through its root", got, mnt)
	}
	if _, err := os.Stat(filepath.Join(mnt, "VERSION")); err == nil {
		t.Fatal("the bind mount leaked out of the namespace: the test would prove nothing")
	}
	inv := inventory.New(inventory.Config{})
	id, _ := inv.Observe(got, time.Now(), cmd.Process.Pid)
	e, _ := inv.Get(id)
	tgt, pid, err := inventory.Patroller{}.Enter(e)
	if err != nil || pid != cmd.Process.Pid || !strings.HasSuffix(tgt.Root, "/root") {
		t.Fatalf("enter: %+v pid %d, %v", tgt, pid, err)
	}
	if _, err := os.Stat(tgt.Path(mnt + "/VERSION")); err != nil {
		t.Errorf("the namespace's GOROOT is not seen through %s: %v", tgt.Root, err)
	}

	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	r, rep := inventory.Patroller{}.Patrol(context.Background(), e)
	if r.Outcome != inventory.OutcomeUnreachable || r.Healthy() || rep != nil || !strings.Contains(r.Reason, "no process left") {
		t.Errorf("patrol of a gone namespace: %+v, want unreachable", r)
	}
}

// A patrol's commands, and what they start, run at the Patroller's
// niceness (environments.nice): the builds beside keep their speed. A
// niceness of 2 tells it from the test's 0 without starving the go env
// of the toolchain's resolution on a loaded machine, as 19 would.
func TestPatrolRunsAtItsNiceness(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		testgate.Missing(t, "go: %v", err)
	}
	goBin, _ = filepath.EvalSymlinks(goBin)
	niceOf := check.Check{ID: "test.nice", Title: "niceness of a command and its child", Run: func(ctx context.Context, env *check.Env) check.Result {
		out, err := check.CombinedOutput(env.Target.Command(ctx, "/bin/sh", "-c", `cut -d' ' -f19 /proc/self/stat; sh -c "cut -d' ' -f19 /proc/self/stat"`))
		if err != nil {
			return check.Result{ID: "test.nice", Status: check.Error, Summary: err.Error()}
		}
		return check.Result{ID: "test.nice", Status: check.Pass, Summary: strings.Join(strings.Fields(string(out)), " ")}
	}}
	e := inventory.Entry{ID: "self", PIDs: []int{os.Getpid()}, Env: inventory.Env{Go: goBin, UID: uint32(os.Getuid()),
		Vars: map[string]string{"PATH": filepath.Dir(goBin) + ":/usr/bin:/bin", "GOTOOLCHAIN": "local", "HOME": t.TempDir()}}}
	r, rep := inventory.Patroller{Checks: []check.Check{niceOf}, Nice: 2}.Patrol(context.Background(), e)
	if rep == nil || len(rep.Results) != 1 {
		t.Fatalf("%+v: want the check's result", r)
	}
	if got := rep.Results[0].Summary; got != "2 2" {
		t.Errorf("Nice 2: the check's command and its child ran at %q, want 2 2", got)
	}
}

// A host environment whose go commands have ended and whose GOCACHE lived
// in a directory since removed (a finished CI job's temporary directory)
// is not patrolled: that would only re-create the job's cache and compile
// into it every cycle. While that directory stays, a missing cache is
// still the doctor's to judge (a cache its user could not create).
func TestFinishedJobsEnvironmentIsNotRebuilt(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		testgate.Missing(t, "go: %v", err)
	}
	goBin, _ = filepath.EvalSymlinks(goBin)
	ran := 0
	counted := check.Check{ID: "test.ran", Title: "counts its runs", NoToolchain: true, Run: func(context.Context, *check.Env) check.Result {
		ran++
		return check.Result{ID: "test.ran", Status: check.Pass, Summary: "ran"}
	}}
	job := t.TempDir()
	cache := filepath.Join(job, "work", "gocache")
	os.MkdirAll(filepath.Dir(cache), 0o755)
	// A process that has ended: the job's go command.
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	e := inventory.Entry{ID: "job", PIDs: []int{done.Process.Pid}, Env: inventory.Env{Go: goBin, UID: uint32(os.Getuid()),
		Vars: map[string]string{"PATH": filepath.Dir(goBin) + ":/usr/bin:/bin", "GOTOOLCHAIN": "local", "GOCACHE": cache}}}
	pat := inventory.Patroller{Checks: []check.Check{counted}}

	r, _ := pat.Patrol(context.Background(), e)
	if r.Outcome == inventory.OutcomeUnreachable || ran != 1 {
		t.Fatalf("job directory still there: %+v (ran %d), want patrolled", r, ran)
	}
	os.RemoveAll(filepath.Join(job, "work"))
	r, _ = pat.Patrol(context.Background(), e)
	if r.Outcome != inventory.OutcomeUnreachable || r.Healthy() || !strings.Contains(r.Reason, "GOCACHE") || ran != 1 {
		t.Errorf("job directory removed: %+v (ran %d), want unreachable naming GOCACHE, no check run", r, ran)
	}
	if _, err := os.Stat(cache); err == nil {
		t.Errorf("the patrol re-created %s", cache)
	}
}

// A go command that exited before it was read is made from what the
// sensors streamed at its exec and its parent's view of the same files:
// the same environment a live capture gives. Where the parent's view is
// not the same (another mount namespace or cgroup, or no parent left),
// or the stream was cut, it is an error, never a guess.
func TestCaptureOfAGoneProcess(t *testing.T) {
	findmnt := testgate.Tool(t, "findmnt", "util-linux")
	out, err := exec.Command(findmnt, "-n", "-t", "cgroup2", "-o", "TARGET").Output()
	if err != nil {
		testgate.Missing(t, "no cgroup2 mount: %v", err)
	}
	cgroupMnt := strings.Fields(string(out))[0]
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var cgroupID uint64
	for _, l := range strings.Split(string(self), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(cgroupMnt, p), &st); err != nil {
				t.Fatal(err)
			}
			cgroupID = st.Ino
		}
	}
	var ns syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/mnt", &ns); err != nil {
		t.Fatal(err)
	}

	goroot := fakeRoot(t, t.TempDir(), "go1.99.1")
	_, sub := module(t)
	vars := []string{"PATH=/usr/bin:/bin", "GOFLAGS=-mod=mod", "SECRET_TOKEN=" + secret}
	var c inventory.Capturer
	live := captured(t, &c, start(t, sub, vars, filepath.Join(goroot, "bin", "go"), "30").Process.Pid, "/bin/go")
	exit := func() int {
		gone := exec.Command("true")
		if err := gone.Run(); err != nil {
			t.Fatal(err)
		}
		return gone.Process.Pid
	}
	exited, exitedParent := exit(), exit()

	streamed := func() inventory.Exec {
		return inventory.Exec{PID: exited, PPID: os.Getpid(), UID: uint32(os.Getuid()), MountNS: ns.Ino, CgroupID: cgroupID,
			Go: filepath.Join(goroot, "bin", "go"), Cwd: sub, Environ: []byte(strings.Join(vars, "\x00") + "\x00")}
	}
	cases := []struct {
		name  string
		edit  func(*inventory.Exec)
		error string
	}{
		{"all streamed", func(*inventory.Exec) {}, ""},
		{"environment cut", func(x *inventory.Exec) { x.EnvironTruncated = true }, "longer than the sensors stream"},
		{"executable not seen", func(x *inventory.Exec) { x.Go = "" }, "not seen at its exec"},
		{"parent in another cgroup", func(x *inventory.Exec) { x.CgroupID++ }, "another cgroup"},
		{"parent in another mount namespace", func(x *inventory.Exec) { x.MountNS++ }, "another mount namespace"},
		{"parent gone too", func(x *inventory.Exec) { x.PPID = exitedParent }, "so did its parent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x := streamed()
			tc.edit(&x)
			environ := x.Environ
			got, err := c.CaptureExec(x)
			if strings.Contains(string(environ), secret) {
				t.Errorf("the streamed environment was not cleared: %q", environ)
			}
			if tc.error != "" {
				if err == nil || !strings.Contains(err.Error(), tc.error) {
					t.Errorf("CaptureExec: %+v, %v; want an error saying %q", got, err, tc.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID() != live.ID() || !maps.Equal(got.Vars, live.Vars) {
				t.Errorf("gone process: %s %+v\nlive one:     %s %+v", got.ID(), got, live.ID(), live)
			}
		})
	}
}
