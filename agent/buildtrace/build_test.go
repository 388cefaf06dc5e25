package buildtrace_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/buildtrace"
	"github.com/gopatrol/gopatrol/bpf"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

func TestGoCommand(t *testing.T) {
	tests := []struct {
		args     []string
		sub      string
		patterns []string
	}{
		{[]string{"go", "build", "./..."}, "build", []string{"./..."}},
		{[]string{"go", "build", "-o", "/tmp/out", "-ldflags", "-X main.token=s3cret", "./cmd/x", "./cmd/y"}, "build", []string{"./cmd/x", "./cmd/y"}},
		{[]string{"go", "test", "-run", "TestX", "-count=1", "./pkg", "-args", "-password", "hunter2"}, "test", []string{"./pkg"}},
		{[]string{"go", "run", "./tool", "--token", "s3cret", "arg"}, "run", []string{"./tool"}},
		{[]string{"go", "test", "./pkg", "-v", "-args", "s3cret", "./other"}, "test", []string{"./pkg"}},
		{[]string{"go", "run", "a.go", "b.go", "secret"}, "run", []string{"a.go", "b.go"}},
		{[]string{"go", "mod", "download", "-x", "golang.org/x/mod@v0.20.0"}, "mod download", []string{"golang.org/x/mod@v0.20.0"}},
		{[]string{"go", "tool", "mytool", "secret"}, "tool", nil},
		{[]string{"go", "env", "GOPROXY=https://u:p@proxy"}, "env", nil},
		{[]string{"go", "get", "https://user:pw@host/x"}, "get", nil},
		{[]string{"go", "install", "KEY=value", "example.com/cmd@latest"}, "install", []string{"example.com/cmd@latest"}},
		{[]string{"go", "/tmp/secret"}, "other", nil},
		{[]string{"go"}, "unknown", nil},
		{[]string{"go", "-C", "dir", "vet", "./..."}, "vet", []string{"./..."}},
	}
	for _, tt := range tests {
		sub, pats := buildtrace.GoCommand(tt.args)
		if sub != tt.sub || !slices.Equal(pats, tt.patterns) {
			t.Errorf("GoCommand(%q) = %q %q, want %q %q", tt.args, sub, pats, tt.sub, tt.patterns)
		}
	}
}

func TestIdentityOf(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const uid = "6b1a2c3d-1111-2222-3333-444455556666"
	tests := []struct{ path, container, pod string }{
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6b1a2c3d_1111_2222_3333_444455556666.slice/cri-containerd-" + id + ".scope", id, uid},
		{"/kubepods/besteffort/pod" + uid + "/" + id, id, uid},
		{"/system.slice/docker-" + id + ".scope", id, ""},
		{"/user.slice/user-1000.slice/session-3.scope", "", ""},
		{"/", "", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		c, p := buildtrace.IdentityOf(tt.path)
		if c != tt.container || p != tt.pod {
			t.Errorf("IdentityOf(%q) = %q %q, want %q %q", tt.path, c, p, tt.container, tt.pod)
		}
	}
}

// feed plays one tree: go build (root pid) running one compile per
// package, exiting with code; times in ms from start.
func feed(b *buildtrace.Builder, root uint32, start time.Duration, dur time.Duration, code int32) {
	h := func(pid uint32, at time.Duration) bpf.Header {
		return bpf.Header{PID: pid, TID: pid, RootPID: root, Time: at}
	}
	b.Event(&bpf.ExecEvent{Header: h(root, start), Comm: "go", Filename: "/usr/bin/go", Args: []string{"go", "build", "./..."}})
	c := root + 1
	b.Event(&bpf.ExecEvent{Header: h(c, start+time.Millisecond), PPID: root, Comm: "compile", Filename: "/goroot/pkg/tool/linux_amd64/compile", Args: []string{"compile", "-o", "x", "-p", "example.com/a"}})
	b.Event(&bpf.FileFailureEvent{Header: h(c, start+2*time.Millisecond), Errno: syscall.ENOENT, Error: "ENOENT", Class: bpf.ClassGOCACHE, Path: "/cache/secret"})
	b.Event(&bpf.ExitEvent{Header: h(c, start+dur-time.Millisecond), PPID: root, WaitStatus: code << 8})
	b.Event(&bpf.ExitEvent{Header: h(root, start+dur), WaitStatus: code << 8})
}

// Sampling keeps every failed and every slow build, and exactly the
// configured share of the others.
func TestSampling(t *testing.T) {
	var kept []*buildtrace.Build
	b := buildtrace.New(buildtrace.Config{Share: 0.25, Slow: time.Second}, func(bd *buildtrace.Build) { kept = append(kept, bd) })
	pid := uint32(1000)
	reasons := map[string]int{}
	for i := range 200 {
		code, dur := int32(0), 100*time.Millisecond
		switch {
		case i%10 == 0:
			code = 1 // 20 failures
		case i%20 == 5:
			dur = 2 * time.Second // 10 slow
		}
		feed(b, pid, time.Duration(i)*time.Hour, dur, code)
		pid += 10
	}
	for _, bd := range kept {
		reasons[bd.Reason]++
	}
	// 170 unremarkable builds, a quarter of them kept (42, rounding down).
	if reasons["failed"] != 20 || reasons["slow"] != 10 || reasons["sampled"] != 42 {
		t.Errorf("kept by reason %v, want failed 20, slow 10, sampled 42", reasons)
	}
	st := b.Stats()
	if st.Finished != 200 || st.Kept != 72 || st.Open != 0 {
		t.Errorf("stats %+v", st)
	}
	for _, bd := range kept {
		if bd.Reason == "failed" && (!bd.Failed || bd.Root.Children[0].Exit != 1) {
			t.Errorf("failed build %+v", bd)
		}
		if ev := bd.Root.Children[0].Events; len(ev) != 1 || ev[0].Errno != "ENOENT" || ev[0].Class != "gocache" || ev[0].Path != "" {
			t.Errorf("file events %+v: want one ENOENT gocache without its path", ev)
		}
	}
}

// Open trees are bounded: past MaxOpen the oldest is dropped and counted.
func TestOpenTreeBound(t *testing.T) {
	b := buildtrace.New(buildtrace.Config{MaxOpen: 3, KeepAll: true}, nil)
	for i := range 5 {
		b.Event(&bpf.ExecEvent{Header: bpf.Header{PID: uint32(100 + i), RootPID: uint32(100 + i), Time: time.Duration(i) * time.Second}, Comm: "go", Filename: "go", Args: []string{"go", "build"}})
	}
	if st := b.Stats(); st.Open != 3 || st.Overflow != 2 {
		t.Errorf("stats %+v, want 3 open and 2 overflowed", st)
	}
	// The newest survived: its exit finishes it.
	b.Event(&bpf.ExitEvent{Header: bpf.Header{PID: 104, RootPID: 104, Time: 5 * time.Second}})
	if st := b.Stats(); st.Finished != 1 {
		t.Errorf("stats %+v after the newest tree's exit", st)
	}
}

// A build run in its own cgroup carries the container and pod its path
// names, read from the real cgroup v2 filesystem.
func TestBuildInCgroup(t *testing.T) {
	testgate.Root(t, "creates a cgroup")
	const id = "feedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedface"
	const uid = "0a1b2c3d-aaaa-bbbb-cccc-0123456789ab"
	root := buildtrace.CgroupRoot()
	base := filepath.Join(root, fmt.Sprintf("gopatrol-test-%d", os.Getpid()))
	leaf := filepath.Join(base, "kubepods-pod0a1b2c3d_aaaa_bbbb_cccc_0123456789ab.slice", "cri-containerd-"+id+".scope")
	if err := os.MkdirAll(leaf, 0o755); err != nil {
		testgate.Missing(t, "cgroup v2 at %s: %v", root, err)
	}
	t.Cleanup(func() {
		os.Remove(leaf)
		os.Remove(filepath.Dir(leaf))
		os.Remove(base)
	})
	fd, err := syscall.Open(leaf, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)

	w := newWorld(t, buildtrace.Config{}, false)
	dir := t.TempDir()
	writeModule(t, dir, 1, "")
	cmd := goCmd(t, dir, "build", "-o", filepath.Join(dir, "m.bin"), ".")
	cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	if out, err := runCombined(cmd); err != nil {
		t.Fatalf("go build in %s: %v\n%s", leaf, err, out)
	}
	b := w.build(t, cmd.Process.Pid, time.Minute)
	if b.ContainerID != id || b.PodUID != uid {
		t.Errorf("container %q pod %q, want %q %q", b.ContainerID, b.PodUID, id, uid)
	}
}

func runCombined(cmd *exec.Cmd) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// proc is one process of a synthetic tree: its pid, parent, argv and
// exec..exit times in milliseconds.
type proc struct {
	pid, ppid  uint32
	args       []string
	start, end int
}

// play feeds the execs and exits of procs (procs[0] is the root) in time
// order.
func play(b *buildtrace.Builder, procs []proc) {
	type at struct {
		t    int
		exit bool
		p    proc
	}
	var evs []at
	for _, p := range procs {
		evs = append(evs, at{p.start, false, p}, at{p.end, true, p})
	}
	slices.SortStableFunc(evs, func(a, b at) int { return a.t - b.t })
	root := procs[0].pid
	for _, e := range evs {
		h := bpf.Header{PID: e.p.pid, TID: e.p.pid, RootPID: root, Time: time.Duration(e.t) * time.Millisecond}
		if e.exit {
			b.Event(&bpf.ExitEvent{Header: h, PPID: e.p.ppid})
		} else {
			b.Event(&bpf.ExecEvent{Header: h, PPID: e.p.ppid, Comm: e.p.args[0], Filename: "/bin/" + e.p.args[0], Args: e.p.args})
		}
	}
}

func TestCriticalPath(t *testing.T) {
	tests := []struct {
		name  string
		procs []proc
		want  time.Duration
		path  []string
	}{{
		name: "compiles then link",
		procs: []proc{
			{1, 0, []string{"go", "build"}, 0, 100},
			{2, 1, []string{"compile", "-p", "a"}, 10, 40},
			{3, 1, []string{"compile", "-p", "b"}, 10, 60},
			{4, 1, []string{"compile", "-p", "c"}, 45, 70},
			{5, 1, []string{"link"}, 75, 95},
		},
		want: 75 * time.Millisecond, path: []string{"compile a", "compile c", "link"},
	}, {
		name: "a nested go command is walked into",
		procs: []proc{
			{1, 0, []string{"go", "generate"}, 0, 100},
			{2, 1, []string{"go", "list"}, 10, 50},
			{3, 2, []string{"compile", "-p", "x"}, 20, 45},
			{4, 1, []string{"stringer"}, 60, 90},
		},
		want: 55 * time.Millisecond, path: []string{"go list", "compile x", "stringer"},
	}, {
		name:  "no children",
		procs: []proc{{1, 0, []string{"go", "env"}, 0, 10}},
		want:  0,
	}}
	for _, tt := range tests {
		var got *buildtrace.Build
		b := buildtrace.New(buildtrace.Config{KeepAll: true}, func(bd *buildtrace.Build) { got = bd })
		play(b, tt.procs)
		if got == nil {
			t.Fatalf("%s: no build", tt.name)
		}
		var path []string
		for _, s := range got.Critical {
			path = append(path, s.Name)
		}
		if got.CriticalPath != tt.want || !slices.Equal(path, tt.path) {
			t.Errorf("%s: critical path %v %v, want %v %v", tt.name, got.CriticalPath, path, tt.want, tt.path)
		}
	}
}

// A go command that switches toolchain exec's the other go in the same
// process: the new image is a child span of the first, what it runs nests
// under it, and the root ends with the process.
func TestToolchainSwitchNests(t *testing.T) {
	var got *buildtrace.Build
	b := buildtrace.New(buildtrace.Config{KeepAll: true}, func(bd *buildtrace.Build) { got = bd })
	h := func(pid uint32, ms int) bpf.Header {
		return bpf.Header{PID: pid, TID: pid, RootPID: 1, Time: time.Duration(ms) * time.Millisecond}
	}
	b.Event(&bpf.ExecEvent{Header: h(1, 0), Comm: "go", Filename: "/usr/local/go/bin/go", Args: []string{"go", "build", "./..."}})
	b.Event(&bpf.ExecEvent{Header: h(1, 30), Comm: "go", Filename: "/root/go/pkg/mod/golang.org/toolchain@v0.0.1-go1.27.0.linux-amd64/bin/go", Args: []string{"go", "build", "./..."}})
	b.Event(&bpf.ExecEvent{Header: h(2, 40), PPID: 1, Comm: "compile", Filename: "/x/compile", Args: []string{"compile", "-p", "main"}})
	b.Event(&bpf.ExitEvent{Header: h(2, 80), PPID: 1})
	b.Event(&bpf.ExitEvent{Header: h(1, 100), WaitStatus: 1 << 8})
	if got == nil {
		t.Fatal("no build after the go command's exit")
	}
	root := got.Root
	if len(root.Children) != 1 || root.Children[0].Kind != buildtrace.KindGo || root.Children[0].Name != "go build" {
		t.Fatalf("root's children %v, want the switched-to go build", names(root.Children))
	}
	next := root.Children[0]
	if len(next.Children) != 1 || next.Children[0].Name != "compile main" {
		t.Errorf("switched-to go's children %v, want compile main", names(next.Children))
	}
	if root.End != 100*time.Millisecond || root.Unfinished || root.Exit != 1 || !got.Failed {
		t.Errorf("root end %v unfinished %v exit %d failed %v; want 100ms, exit 1, failed", root.End, root.Unfinished, root.Exit, got.Failed)
	}
	if next.Start != 30*time.Millisecond || next.End != 100*time.Millisecond {
		t.Errorf("switched-to go [%v..%v], want [30ms..100ms]", next.Start, next.End)
	}
}
