package host_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/plugins/host"
	"github.com/gopatrol/gopatrol/plugins/probetest"
	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// built holds gopatrol-probe-testprobe, compiled once for the package.
var built string

func TestMain(m *testing.M) {
	if dir := os.Getenv("HOSTTEST_HOST_DIR"); dir != "" {
		// A host process for TestPluginDiesWithHost: open, say so, wait
		// to be killed.
		h, err := host.Open(context.Background(), host.Config{Dir: dir})
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("ready", len(h.Plugins()))
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	probetest.Main(m, map[string]string{"testprobe": "github.com/gopatrol/gopatrol/plugins/host/testdata/testprobe"}, &built)
}

// pluginDir lays out copies of the test probe under names, with a manifest.
func pluginDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := probetest.Dir(t, built, "testprobe")
	for _, n := range names {
		if err := os.Link(filepath.Join(dir, host.Prefix+"testprobe"), filepath.Join(dir, host.Prefix+n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(dir, host.Prefix+"testprobe")); err != nil {
		t.Fatal(err)
	}
	if err := host.WriteManifest(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func open(t *testing.T, dir string, log *bytes.Buffer, env ...string) *host.Host {
	t.Helper()
	return openConfig(t, host.Config{Dir: dir, Env: env}, log)
}

func openConfig(t *testing.T, cfg host.Config, log *bytes.Buffer) *host.Host {
	t.Helper()
	cfg.PluginLog = os.Stderr
	if log != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	h, err := host.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func TestDiscoverRefuses(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(t *testing.T, dir, bin string)
		want   string // in the refusal, with the path or value
	}{
		{"checksum mismatch", func(t *testing.T, dir, bin string) {
			f, err := os.OpenFile(bin, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("tampered"))
			f.Close()
		}, "the manifest says"},
		{"not in manifest", func(t *testing.T, dir, bin string) {
			os.WriteFile(filepath.Join(dir, host.ManifestName), []byte("# empty\n"), 0o644)
		}, "gopatrol-probe-aws is not in the manifest"},
		{"no manifest", func(t *testing.T, dir, bin string) {
			os.Remove(filepath.Join(dir, host.ManifestName))
		}, "SHA256SUMS"},
		{"malformed manifest", func(t *testing.T, dir, bin string) {
			os.WriteFile(filepath.Join(dir, host.ManifestName), []byte("deadbeef gopatrol-probe-aws\n"), 0o644)
		}, "SHA256SUMS:1"},
		{"binary writable by others", func(t *testing.T, dir, bin string) {
			os.Chmod(bin, 0o757)
		}, "gopatrol-probe-aws is writable by group or others (mode -rwxr-xrwx)"},
		{"binary owned by nobody", func(t *testing.T, dir, bin string) {
			if os.Geteuid() != 0 {
				probetest.Skip(t, "needs root to chown")
			}
			if err := os.Chown(bin, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 65534"},
		{"symlink", func(t *testing.T, dir, bin string) {
			real := filepath.Join(t.TempDir(), "real")
			os.Rename(bin, real)
			os.Symlink(real, bin)
		}, "gopatrol-probe-aws is a symlink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := pluginDir(t, "aws")
			bin := filepath.Join(dir, host.Prefix+"aws")
			tt.break_(t, dir, bin)
			found, err := host.Discover(dir, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(found) != 1 || found[0].Verified() {
				t.Fatalf("found %+v, want aws refused", found)
			}
			if !strings.Contains(found[0].Err.Error(), tt.want) {
				t.Fatalf("refusal %q does not say %q", found[0].Err, tt.want)
			}
			// Open must not run a refused plugin (a checksum mismatch
			// is caught at exec time by go-plugin's SecureConfig).
			h := open(t, dir, nil)
			for _, p := range h.Plugins() {
				if _, err := p.Info(); err == nil || !strings.Contains(err.Error(), "plugin refused") {
					t.Fatalf("refused plugin %s started: %v", p.Path, err)
				}
			}
		})
	}
}

func TestDiscoverRefusesUnsafeDir(t *testing.T) {
	dir := pluginDir(t, "aws")
	if err := os.Chmod(dir, 0o775); err != nil {
		t.Fatal(err)
	}
	_, err := host.Discover(dir, "", nil)
	if err == nil || !strings.Contains(err.Error(), dir+" is writable by group or others") {
		t.Fatalf("Discover(%s) = %v, want the directory refused", dir, err)
	}
}

func TestDetectMergesByPrecedence(t *testing.T) {
	dir := pluginDir(t, "aws", "openshift", "zzz", "quiet")
	var log bytes.Buffer
	h := open(t, dir, &log,
		"TESTPROBE_ATTRS_aws=cloud.provider=aws,cloud.platform=aws_ec2,cloud.region=eu-west-1",
		"TESTPROBE_ATTRS_openshift=cloud.platform=aws_openshift,k8s.cluster.name=prod",
		"TESTPROBE_ATTRS_zzz=cloud.region=elsewhere,x.extra=1",
	)
	r := h.Detect(context.Background())
	want := map[string]string{
		"cloud.provider": "aws", "cloud.platform": "aws_openshift", "cloud.region": "eu-west-1",
		"k8s.cluster.name": "prod", "x.extra": "1",
	}
	if fmt.Sprint(r.Attributes) != fmt.Sprint(want) {
		t.Errorf("attributes %v, want %v", r.Attributes, want)
	}
	if r.Sources["cloud.platform"] != "openshift" || r.Sources["cloud.region"] != "aws" {
		t.Errorf("sources %v: want cloud.platform from openshift, cloud.region from aws", r.Sources)
	}
	var order []string
	for _, res := range r.Results {
		order = append(order, res.Plugin+":"+string(res.Status))
	}
	if got := strings.Join(order, " "); got != "openshift:detected aws:detected quiet:not_this_cloud zzz:detected" {
		t.Errorf("results %s", got)
	}
	for _, s := range []string{"key=cloud.platform kept=aws_openshift kept_from=openshift dropped=aws_ec2 dropped_from=aws",
		"key=cloud.region kept=eu-west-1 kept_from=aws dropped=elsewhere dropped_from=zzz"} {
		if !strings.Contains(log.String(), s) {
			t.Errorf("conflict not logged: want %q in\n%s", s, log.String())
		}
	}
}

func TestCrashedPluginIsRestarted(t *testing.T) {
	dir := pluginDir(t, "panicky")
	marker := filepath.Join(t.TempDir(), "panicked")
	h := open(t, dir, nil, "TESTPROBE_ATTRS_panicky=cloud.region=r1", "TESTPROBE_PANIC_panicky="+marker)
	p := h.Plugins()[0]
	if r := p.Detect(context.Background()); r.Status != sdk.Detected {
		t.Fatalf("first Detect = %+v, want detected", r)
	}
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	crash := p.Detect(context.Background())
	if crash.Status != host.StatusStale || crash.Attributes["cloud.region"] != "r1" || !strings.Contains(crash.Reason, "crashed during Detect") {
		t.Fatalf("Detect during the panic = %+v, want stale with the last cloud.region=r1", crash)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatalf("the plugin did not panic: %s still there", marker)
	}
	var r host.Result
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if r = p.Detect(context.Background()); r.Status == sdk.Detected {
			break
		}
	}
	if r.Status != sdk.Detected || r.Attributes["cloud.region"] != "r1" {
		t.Fatalf("after restart Detect = %+v, want detected with cloud.region=r1", r)
	}
	if n := p.Restarts(); n != 1 {
		t.Errorf("Restarts() = %d, want 1", n)
	}
}

func TestStdoutBeforeHandshake(t *testing.T) {
	dir := pluginDir(t, "chatty")
	h := open(t, dir, nil, "TESTPROBE_STDOUT_chatty=hello from main")
	_, err := h.Plugins()[0].Info()
	want := `gopatrol-probe-chatty wrote "hello from main" to stdout before the go-plugin handshake`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Info() error = %v, want it to contain %q", err, want)
	}
	if r := h.Plugins()[0].Detect(context.Background()); r.Status != sdk.Failed || !strings.Contains(r.Reason, "to stdout before the go-plugin handshake") {
		t.Errorf("Detect of a plugin that never started = %+v, want an error with the reason", r)
	}
}

// proc is a line of /proc/PID/stat: what the shutdown tests look at.
type proc struct {
	pid, ppid, pgid int
	state           string
}

func procs(t *testing.T) map[int]proc {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]proc{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces, cut after ')'.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 3 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgid, _ := strconv.Atoi(f[2])
		out[pid] = proc{pid: pid, ppid: ppid, pgid: pgid, state: f[0]}
	}
	return out
}

// children lists the live pids whose parent is this test process.
func children(t *testing.T) []int { return childrenOf(t, os.Getpid()) }

func childrenOf(t *testing.T, parent int) []int {
	t.Helper()
	var out []int
	for _, p := range procs(t) {
		if p.ppid == parent && p.state != "Z" {
			out = append(out, p.pid)
		}
	}
	return out
}

// leftovers is what survives of before (a family taken while the plugins
// ran: a grandchild is re-parented when its parent dies) and of the
// groups and descendants of roots.
// A SIGKILL takes effect asynchronously, so survivors get a few seconds
// to die before they count.
func leftovers(t *testing.T, roots, before []int) []int {
	t.Helper()
	var left []int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left = family(t, roots)
		for _, pid := range before {
			if alive(pid) && !slices.Contains(left, pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
	}
}

// family lists the live processes (zombies are dead) that belong to the
// process group of one of roots or descend from one of roots: what a
// plugin and everything it started would leave behind.
func family(t *testing.T, roots []int) []int {
	t.Helper()
	table := procs(t)
	var out []int
	for _, p := range table {
		if p.state == "Z" {
			continue
		}
		in := slices.Contains(roots, p.pgid)
		for q, seen := p, 0; !in && q.ppid > 1 && seen < 64; seen++ {
			in = slices.Contains(roots, q.ppid)
			q = table[q.ppid]
		}
		if in || slices.Contains(roots, p.pid) {
			out = append(out, p.pid)
		}
	}
	return out
}

func TestCloseLeavesNoChild(t *testing.T) {
	dir := pluginDir(t, "a", "b", "c")
	h, err := host.Open(context.Background(), host.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	kids := children(t)
	if len(kids) < 3 {
		t.Fatalf("%d children after Open, want the 3 plugins", len(kids))
	}
	before := family(t, kids)
	h.Close()
	if left := leftovers(t, kids, before); len(left) != 0 {
		t.Fatalf("processes of the plugins' groups or their descendants left after Close: %v", left)
	}
}

// A binary replaced after discovery is refused at its next start by
// go-plugin's own checksum (SecureConfig), not run.
func TestSwappedBinaryRefusedOnRestart(t *testing.T) {
	dir := pluginDir(t, "panicky")
	marker := filepath.Join(t.TempDir(), "panicked")
	h := open(t, dir, nil, "TESTPROBE_ATTRS_panicky=a=b", "TESTPROBE_PANIC_panicky="+marker)
	bin := filepath.Join(dir, host.Prefix+"panicky")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	tmp := bin + ".new"
	if err := os.WriteFile(tmp, append(b, "swapped"...), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	p := h.Plugins()[0]
	if r := p.Detect(context.Background()); r.Status != sdk.Detected {
		t.Fatalf("first Detect = %+v, want detected", r)
	}
	os.WriteFile(marker, nil, 0o600)
	p.Detect(context.Background()) // panics: the supervisor restarts it
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err = p.Info(); err != nil && strings.Contains(err.Error(), "differs from the manifest") {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), bin+": its sha256 differs from the manifest's") {
		t.Fatalf("Info() after swap = %v, want the swapped binary refused", err)
	}
	if r := p.Detect(context.Background()); r.Status != host.StatusStale || r.Attributes["a"] != "b" {
		t.Errorf("Detect = %+v, want stale with the last attributes a=b", r)
	}
}

// The kernel kills a plugin whose host dies without a chance to clean up
// (SIGKILL): PR_SET_PDEATHSIG, armed by sdk.Serve.
func TestPluginDiesWithHost(t *testing.T) {
	dir := pluginDir(t, "orphan")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HOSTTEST_HOST_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line := make([]byte, 64)
	n, _ := out.Read(line)
	if !strings.HasPrefix(string(line[:n]), "ready 1") {
		t.Fatalf("host helper said %q, want ready 1", line[:n])
	}
	plugins := childrenOf(t, cmd.Process.Pid)
	if len(plugins) != 1 {
		t.Fatalf("host helper has children %v, want its one plugin", plugins)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !alive(plugins[0]) {
			return
		}
	}
	syscall.Kill(plugins[0], syscall.SIGKILL)
	t.Fatalf("plugin pid %d still alive 3s after its host was killed", plugins[0])
}

// alive: the process exists and is not a zombie waiting for a reaper.
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func TestCollect(t *testing.T) {
	dir := pluginDir(t, "metrics")
	h := open(t, dir, nil, "TESTPROBE_ATTRS_metrics=a=1,b=2")
	pts, err := h.Plugins()[0].Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || pts[0].Name != "testprobe.attr" || pts[0].Unit != "{attribute}" || pts[1].Attributes["key"] != "b" {
		t.Fatalf("Collect = %+v, want two testprobe.attr points for a and b", pts)
	}
}

// The host runs every plugin on host.PluginMaxProcs Ps, each P's memory
// being the probe's cost (#11), unless its Env sets GOMAXPROCS; whatever
// the host's own environment says is the host's.
func TestPluginMaxProcs(t *testing.T) {
	t.Setenv("GOMAXPROCS", "4") // the agent's own, not its plugins'
	tests := []struct {
		env  []string
		want int
	}{
		{nil, host.PluginMaxProcs},
		{[]string{"GOMAXPROCS=3"}, 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.env), func(t *testing.T) {
			env := append(tt.env, "TESTPROBE_ATTRS_procs=cloud.provider=x", "TESTPROBE_REPORTPROCS_procs=1")
			r := open(t, pluginDir(t, "procs"), nil, env...).Plugins()[0].Detect(context.Background())
			if got := r.Attributes["gomaxprocs"]; got != strconv.Itoa(tt.want) {
				t.Errorf("GOMAXPROCS %q in the plugin (status %s, %s), want %d", got, r.Status, r.Reason, tt.want)
			}
		})
	}
}
