package host_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/plugins/host"
	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// within runs f and fails the test if f has not returned after d. The
// defects it guards against are hangs, so d is generous: it bounds, it
// does not time.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v: a hang", what, d)
	}
}

// A plugin whose child keeps its stdout open used to hang the host for
// ever: go-plugin reads the output until EOF before it reaps the plugin.
// The plugin's process group is killed as a whole, so Open, Detect and
// Close return, and nothing of the group survives.
//
// A grandchild that let go of the output (a daemon) does not hold Close,
// but is killed with the group all the same.
func TestGrandchildHoldingStdout(t *testing.T) {
	for _, fork := range []string{"1", "detached"} {
		t.Run(fork, func(t *testing.T) { testGrandchild(t, fork) })
	}
}

func testGrandchild(t *testing.T, fork string) {
	dir := pluginDir(t, "forker")
	var h *host.Host
	within(t, 30*time.Second, "Open", func() {
		var err error
		h, err = host.Open(context.Background(), host.Config{Dir: dir, Env: []string{"TESTPROBE_FORK_forker=" + fork, "TESTPROBE_ATTRS_forker=a=b"}})
		if err != nil {
			t.Error(err)
		}
	})
	if h == nil {
		t.FailNow()
	}
	kids := children(t)
	if len(kids) != 1 {
		t.Fatalf("children after Open: %v, want the plugin", kids)
	}
	before := family(t, kids)
	if len(before) < 2 {
		t.Fatalf("the plugin's group and descendants %v: want the plugin and its sleep", before)
	}
	within(t, 30*time.Second, "Detect", func() {
		if r := h.Detect(context.Background()); r.Attributes["a"] != "b" {
			t.Errorf("Detect = %+v, want a=b", r)
		}
	})
	within(t, 30*time.Second, "Close", h.Close)
	if left := leftovers(t, kids, before); len(left) != 0 {
		t.Fatalf("processes of the plugin's group or descendants left after Close: %v", left)
	}
}

// A plugin that dies before its handshake is reported as having exited,
// with its exit status and what it said on stderr.
func TestCrashBeforeHandshake(t *testing.T) {
	dir := pluginDir(t, "broken")
	h := open(t, dir, nil, "TESTPROBE_EXIT_broken=3")
	p := h.Plugins()[0]
	_, err := p.Info()
	for _, want := range []string{
		filepath.Join(dir, host.Prefix+"broken") + " exited before the go-plugin handshake (exit status 3)",
		"testprobe broken: cannot read its configuration, exiting with 3",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Info() error = %v, want it to contain %q", err, want)
		}
	}
	r := p.Detect(context.Background())
	if r.Up() || r.Status != sdk.Failed || r.ExitStatus != "exit status 3" || !strings.Contains(r.Reason, "exited before the go-plugin handshake") {
		t.Errorf("Detect = %+v, want a failure with exit status 3 and the reason", r)
	}
}

// A plugin that never completes its handshake is given up at the start
// timeout, with nothing of it left running.
func TestStartTimeout(t *testing.T) {
	dir := pluginDir(t, "stuck")
	marker := filepath.Join(t.TempDir(), "stuck")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var h *host.Host
	within(t, 30*time.Second, "Open of a plugin that never shakes hands", func() {
		h = openConfig(t, host.Config{Dir: dir, StartTimeout: 500 * time.Millisecond, MinBackoff: time.Minute,
			Env: []string{"TESTPROBE_SLOWSTART_stuck=" + marker}}, nil)
	})
	_, err := h.Plugins()[0].Info()
	want := "gopatrol-probe-stuck: no go-plugin handshake within the start timeout (500ms)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Info() error = %v, want %q", err, want)
	}
	if kids := children(t); len(kids) != 0 {
		t.Fatalf("children left after a start timeout: %v", kids)
	}
}

// Info is asked under the call deadline: a plugin that never answers it
// does not hold Open for longer.
func TestInfoDeadline(t *testing.T) {
	dir := pluginDir(t, "mute")
	h := openConfig(t, host.Config{Dir: dir, Env: []string{"TESTPROBE_INFOSLEEP_mute=1m"},
		CallTimeout: 300 * time.Millisecond, StartTimeout: 2 * time.Minute}, nil)
	_, err := h.Plugins()[0].Info()
	if err == nil || !strings.Contains(err.Error(), "Info (call deadline 300ms)") || !strings.Contains(err.Error(), "DeadlineExceeded") {
		t.Fatalf("Info() error = %v, want the call deadline exceeded", err)
	}
}

// A Detect never waits for a restart in progress: the supervisor starts
// plugins without holding their lock, so Detect answers stale within its
// own deadline while the plugin hangs before its handshake.
func TestDetectDuringSlowRestart(t *testing.T) {
	dir := pluginDir(t, "slow")
	tmp := t.TempDir()
	panicky, slow := filepath.Join(tmp, "panic"), filepath.Join(tmp, "slow")
	h := openConfig(t, host.Config{Dir: dir, StartTimeout: 2 * time.Minute, MinBackoff: time.Millisecond,
		Env: []string{"TESTPROBE_ATTRS_slow=cloud.region=r1", "TESTPROBE_PANIC_slow=" + panicky, "TESTPROBE_SLOWSTART_slow=" + slow}}, nil)
	p := h.Plugins()[0]
	if r := p.Detect(context.Background()); r.Status != sdk.Detected {
		t.Fatalf("first Detect = %+v, want detected", r)
	}
	for _, f := range []string{panicky, slow} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	crash := p.Detect(context.Background())
	if crash.Up() || crash.Status != host.StatusStale || crash.ExitStatus != "exit status 2" || !strings.Contains(crash.Reason, "crashed during Detect") {
		t.Fatalf("Detect during the panic = %+v, want stale, not up, with Go's panic exit status 2", crash)
	}
	// Wait until the restart hangs in the plugin (it says so with a file).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(slow + ".seen"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the supervisor did not restart the plugin")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	within(t, 20*time.Second, "Detect during a restart", func() {
		if r := p.Detect(ctx); r.Status != host.StatusStale || r.Attributes["cloud.region"] != "r1" {
			t.Errorf("Detect during the restart = %+v, want stale with cloud.region=r1", r)
		}
	})
	within(t, 30*time.Second, "Close during a start", h.Close)
}

func TestDiscoverParents(t *testing.T) {
	tests := []struct {
		mode os.FileMode
		want string // in Discover's error; "" means accepted
	}{
		{0o755, ""},
		{0o777 | os.ModeSticky, ""},
		{0o777, "without the sticky bit"},
		{0o775, "without the sticky bit"},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			src := pluginDir(t, "aws")
			parent := t.TempDir()
			dir := filepath.Join(parent, "plugins")
			if err := os.Rename(src, dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(parent, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := host.Discover(dir, "", nil)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Discover(%s) with parent mode %v: %v", dir, tt.mode, err)
				}
				return
			}
			want := parent + ", a parent of the plugin directory " + dir + ", is writable by group or others " + tt.want
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Discover(%s) = %v, want %q", dir, err, want)
			}
		})
	}
}

func TestManifestEntryForMissingFile(t *testing.T) {
	dir := pluginDir(t, "aws")
	f, err := os.OpenFile(filepath.Join(dir, host.ManifestName), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%s  %sghost\n", strings.Repeat("ab", 32), host.Prefix)
	f.Close()
	found, err := host.Discover(dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range found {
		got = append(got, fmt.Sprintf("%s:%v", c.Name, c.Err))
	}
	want := []string{"aws:<nil>", "ghost:plugin refused: " + filepath.Join(dir, host.Prefix+"ghost") + " is listed in the manifest but does not exist: install it or remove its line"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Discover = %q, want %q", got, want)
	}
}

// The manifest is replaced atomically: a reader never sees it empty or
// cut, and no temporary file stays.
func TestWriteManifestAtomic(t *testing.T) {
	dir := pluginDir(t, "a", "b", "c")
	manifest := filepath.Join(dir, host.ManifestName)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := host.WriteManifest(dir); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for i := 0; i < 2000; i++ {
		b, err := os.ReadFile(manifest)
		if err != nil {
			t.Fatal(err)
		}
		sums, err := host.ParseManifest(b, manifest)
		if err != nil || len(sums) != 3 {
			close(stop)
			wg.Wait()
			t.Fatalf("read %d entries (%v) while the manifest was rewritten: %q", len(sums), err, b)
		}
	}
	close(stop)
	wg.Wait()
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 4 {
		t.Errorf("directory holds %v, want the 3 plugins and the manifest", names)
	}
}
