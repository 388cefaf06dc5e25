package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/gopatrol/gopatrol/internal/testgate"
)

// writeModule writes a module of three packages, one of them with a cgo
// file.
func writeModule(tb testing.TB, dir string) {
	tb.Helper()
	files := map[string]string{
		"go.mod":  "module example.com/m\n\ngo 1.22\n",
		"main.go": "package main\n\nimport (\n\t\"example.com/m/a\"\n\t\"example.com/m/b\"\n)\n\nfunc main() { println(a.A() + b.B()) }\n",
		"a/a.go":  "package a\n\nfunc A() int { return 1 }\n",
		"b/b.go":  "package b\n\n// #include <stdlib.h>\n// static int two(void) { return abs(-2); }\nimport \"C\"\n\nfunc B() int { return int(C.two()) }\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

func goEnv(home string, extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "GOENV=off", "GOFLAGS=",
		"GOTOOLCHAIN=local", "GOPROXY=off", "GOPATH=" + filepath.Join(home, "gopath"),
		"CGO_ENABLED=1",
	}
	return append(env, extra...)
}

// TestGoBuildTree: every compile that `go build -a -x` prints is observed
// as an exec in the go command's tree, with the same -p import paths; the
// cgo file brings gcc and cc1; exits carry codes and durations.
func TestGoBuildTree(t *testing.T) {
	s := openSensor(t, Config{})
	c := collect(s)

	dir := t.TempDir()
	writeModule(t, dir)
	var stderr bytes.Buffer
	cmd := exec.Command("go", "build", "-a", "-x", "-o", filepath.Join(dir, "m.bin"), ".")
	cmd.Dir = dir
	cmd.Env = goEnv(dir, "GOCACHE="+filepath.Join(dir, "cache"))
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	root := cmd.Process.Pid
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go build: %v\n%s", err, tail(stderr.String()))
	}

	// The -x compile lines: "<GOROOT>/pkg/tool/<os_arch>/compile -o ... -p path ...".
	var printed []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && filepath.Base(f[0]) == "compile" {
			if p := flagValue(f, "-p"); p != "" {
				printed = append(printed, p)
			}
		}
	}
	events := c.tree(t, root)
	var observed []string
	comms := map[string]int{}
	execs := map[uint32]*ExecEvent{}
	exits := map[uint32]*ExitEvent{}
	for _, ev := range events {
		switch ev := ev.(type) {
		case *ExecEvent:
			comms[ev.Comm]++
			execs[ev.PID] = ev
			if ev.Comm == "compile" {
				if p := flagValue(ev.Args, "-p"); p != "" {
					observed = append(observed, p)
				}
			}
		case *ExitEvent:
			exits[ev.PID] = ev
		}
	}
	sort.Strings(printed)
	sort.Strings(observed)
	if len(printed) < 10 {
		t.Fatalf("go build -x printed only %d compile lines:\n%s", len(printed), tail(stderr.String()))
	}
	if !slices.Equal(printed, observed) {
		t.Errorf("compile -p paths differ:\n go build -x: %d %v\n observed:    %d %v", len(printed), printed, len(observed), observed)
	}
	for _, want := range []string{"main", "example.com/m/a", "example.com/m/b", "runtime"} {
		if !slices.Contains(observed, want) {
			t.Errorf("no compile -p %s observed", want)
		}
	}
	for _, want := range []string{"go", "compile", "link", "cgo", "gcc", "cc1"} {
		if comms[want] == 0 {
			t.Errorf("no exec of %s in the tree of go (pid %d); seen %v", want, root, comms)
		}
	}
	if e := execs[uint32(root)]; e == nil || e.Comm != "go" || !slices.Contains(e.Args, "-a") {
		t.Errorf("exec of the go command itself: %+v", e)
	}
	rootExit := exits[uint32(root)]
	if rootExit == nil || rootExit.ExitCode() != 0 || rootExit.Duration <= 0 {
		t.Errorf("exit of go: %+v", rootExit)
	}
	for pid, e := range execs {
		if e.Comm != "compile" {
			continue
		}
		x := exits[pid]
		if x == nil {
			t.Errorf("compile pid %d (%s): no exit event", pid, flagValue(e.Args, "-p"))
			continue
		}
		if x.ExitCode() != 0 || x.Duration <= 0 || x.Duration > time.Minute {
			t.Errorf("compile pid %d: exit code %d, duration %v", pid, x.ExitCode(), x.Duration)
		}
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.TotalDrops() != 0 {
		t.Errorf("drops: %v", st.Drops)
	}
	t.Logf("tree of go pid %d: %d events, %d compiles, execs by name %v", root, len(events), len(observed), comms)
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

// modes are the two ways the sensor sees file failures.
var modes = []struct {
	name string
	cfg  Config
}{
	{"uprobes", Config{}},
	{"syscalls", Config{Syscalls: true}},
}

// TestGOCACHEUnwritable: go as nobody with a GOCACHE owned by root; the
// refused writes are counted under GOCACHE with a sample path, whether the
// go command's own error branch or sys_exit sees them.
func TestGOCACHEUnwritable(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { testGOCACHEUnwritable(t, m.cfg) })
	}
}

func testGOCACHEUnwritable(t *testing.T, cfg Config) {
	cred := nobody(t)
	base := helperDir(t)
	cache := filepath.Join(base, "cache")
	home := filepath.Join(base, "home")
	for _, d := range []string{cache, home} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(home, int(cred.Uid), int(cred.Gid)); err != nil {
		t.Fatal(err)
	}
	writeModule(t, filepath.Join(base, "mod"))
	cfg.Classes = map[Class][]string{ClassGOCACHE: {cache}}
	s := openSensor(t, cfg)
	if !cfg.Syscalls && len(s.GoTools()) == 0 {
		t.Fatalf("no Go binary probed by default (go on PATH: %v)", DefaultGoTools())
	}
	c := collect(s)

	cmd := exec.Command("go", "build", "-o", os.DevNull, ".")
	cmd.Dir = filepath.Join(base, "mod")
	cmd.Env = goEnv(home, "GOCACHE="+cache)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("go build as nobody with GOCACHE %s owned by root succeeded:\n%s", cache, out)
	}
	root := cmd.Process.Pid
	var samples []*FileFailureEvent
	for _, ev := range c.tree(t, root) {
		if f, ok := ev.(*FileFailureEvent); ok && f.Class == ClassGOCACHE {
			samples = append(samples, f)
		}
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	n := st.Failures(ClassGOCACHE, syscall.EACCES)
	if n == 0 {
		t.Fatalf("no EACCES counted under GOCACHE (%s); counters %+v; go said:\n%s", cache, st.FileFailures, out)
	}
	found := false
	for _, f := range samples {
		if f.Errno == syscall.EACCES && strings.HasPrefix(f.Path, cache) && f.PID != 0 {
			found = true
			t.Logf("sample: %q %s %s (%s) by pid %d", f.Syscall, f.Error, f.Path, f.Class, f.PID)
			if (f.Syscall != "") != cfg.Syscalls {
				t.Errorf("syscall %q named in mode syscalls=%v", f.Syscall, cfg.Syscalls)
			}
		}
	}
	if !found {
		t.Errorf("no EACCES sample with a path under %s: %+v", cache, samples)
	}
	if uint64(len(samples)) > n || len(samples) > DefaultSampleLimit {
		t.Errorf("%d samples for %d counted failures (limit %d)", len(samples), n, DefaultSampleLimit)
	}
}

// TestOnlyGoTrees runs the same workload (EACCES, ENOENT, connects, exec)
// under the name "go" and under another name: only the first is seen. Both
// copies are probed Go binaries, so the uprobe's own tree check is tested.
func TestOnlyGoTrees(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { testOnlyGoTrees(t, m.cfg) })
	}
}

func testOnlyGoTrees(t *testing.T, cfg Config) {
	cred := nobody(t)
	base := helperDir(t)
	classDir := filepath.Join(base, "class")
	if err := os.Mkdir(classDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ln := acceptor(t)
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().(*net.TCPAddr)
	closed.Close()

	bins := map[string]string{"go": helperBinary(t, base, "go"), "notgo": helperBinary(t, base, "notgo")}
	cfg.Classes = map[Class][]string{ClassGOMODCACHE: {classDir}}
	// The helper connects within a millisecond of its exec: before a lazy
	// sensor could attach gp_sock_state (TestTreeScope tests that path).
	cfg.Eager = true
	if !cfg.Syscalls {
		cfg.GoTools = []string{bins["go"], bins["notgo"]}
	}
	s := openSensor(t, cfg)
	c := collect(s)
	run := func(name string) int {
		cmd := exec.Command(bins[name])
		cmd.Env = append(os.Environ(), helperEnv+"=workload", "DIR="+classDir, "ADDR="+ln.Addr().String(), "REFUSED="+refused.String())
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s workload: %v\n%s", name, err, out)
		}
		return cmd.Process.Pid
	}

	// Not a tree: nothing of it, and the class counters stay at zero.
	other := run("notgo")
	time.Sleep(300 * time.Millisecond)
	for _, ev := range c.all() {
		h := ev.EventHeader()
		if h.PID == uint32(other) || h.RootPID == uint32(other) {
			t.Errorf("event of the non-Go process %d: %#v", other, ev)
		}
		if ce, ok := ev.(*ConnectEvent); ok && (ce.Addr.Port() == port || ce.Addr.Port() == uint16(refused.Port)) {
			t.Errorf("connect to the test ports seen from outside a tree: %+v", ce)
		}
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []syscall.Errno{syscall.EACCES, syscall.ENOENT} {
		if n := st.Failures(ClassGOMODCACHE, e); n != 0 {
			t.Errorf("non-Go process: %d %v counted under %s", n, e, classDir)
		}
	}

	// The same program named go: its own tree, everything seen.
	root := run("go")
	events := c.tree(t, root)
	var sawExec, sawTrue, sawConnect, sawRefused, sawFailure bool
	for _, ev := range events {
		switch ev := ev.(type) {
		case *ExecEvent:
			sawExec = sawExec || ev.PID == uint32(root)
			if ev.Filename == "/bin/true" {
				sawTrue = true
				if ev.PPID != uint32(root) {
					t.Errorf("/bin/true: ppid %d, want %d", ev.PPID, root)
				}
			}
		case *ExitEvent:
			// A thread (CLONE_THREAD) must not rewrite its process's entry.
			if ev.PID == uint32(root) && ev.PPID != uint32(os.Getpid()) {
				t.Errorf("exit of %d: ppid %d, want the test process %d", root, ev.PPID, os.Getpid())
			}
		case *ConnectEvent:
			loopback := netip.MustParseAddr("127.0.0.1")
			if ev.PID != uint32(root) || ev.Duration <= 0 {
				t.Errorf("connect: pid %d (want %d), duration %v", ev.PID, root, ev.Duration)
			}
			switch ev.Addr {
			case netip.AddrPortFrom(loopback, port):
				sawConnect = ev.Errno == 0
			case netip.AddrPortFrom(loopback, uint16(refused.Port)):
				sawRefused = ev.Errno == syscall.ECONNREFUSED
			}
		case *FileFailureEvent:
			wantSyscall := ""
			if cfg.Syscalls {
				wantSyscall = "mkdirat"
			}
			if ev.Class == ClassGOMODCACHE && ev.Errno == syscall.EACCES && ev.Path == filepath.Join(classDir, "sub") && ev.Syscall == wantSyscall {
				sawFailure = true
			}
			if ev.Errno == syscall.ENOENT {
				t.Errorf("ENOENT streamed: %+v", ev)
			}
		}
	}
	if !sawExec || !sawTrue || !sawConnect || !sawRefused || !sawFailure {
		t.Errorf("tree of %d: exec %v, exec of /bin/true %v, connect to :%d %v, refused by %s %v, mkdir EACCES %v\nevents: %s",
			root, sawExec, sawTrue, port, sawConnect, refused, sawRefused, sawFailure, describe(events))
	}
	// The Go helper ran several threads and a child: once all exited, no
	// entry of its tree remains (threads never became members, exits
	// removed the processes).
	var pid uint32
	var entry struct {
		RootPID, PPID uint32
		StartNs       uint64
	}
	it := s.objs.GpTree.Iterate()
	for it.Next(&pid, &entry) {
		if entry.RootPID == uint32(root) {
			t.Errorf("tree map still holds pid %d of the finished tree %d", pid, root)
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}

	st, err = s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Failures(ClassGOMODCACHE, syscall.EACCES); n != 1 {
		t.Errorf("EACCES under %s counted %d times, want 1", classDir, n)
	}
	if n := st.Failures(ClassGOMODCACHE, syscall.ENOENT); n != 1 {
		t.Errorf("ENOENT under %s counted %d times, want 1", classDir, n)
	}
}

func describe(evs []Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "  %s %+v\n", ev.EventHeader().Type, ev)
	}
	return b.String()
}

// TestMillionFailures: a tree that fails many opens streams exactly
// SampleLimit samples, counts every failure and drops nothing.
func TestMillionFailures(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	got := failingTree(t, n)
	t.Logf("%d failing opens: %+v", n, got)
}

type failingResult struct {
	Counted, Samples, Drops uint64
	Elapsed                 time.Duration
}

// failingTree runs a go-named helper as nobody that fails n creates with
// EACCES under a GOCACHE-classified directory, and checks exactness.
func failingTree(tb testing.TB, n int) failingResult {
	cred := nobody(tb)
	base := helperDir(tb)
	dir := filepath.Join(base, "cache")
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	bin := helperBinary(tb, base, "go")
	s := openSensor(tb, Config{Classes: map[Class][]string{ClassGOCACHE: {dir}}, GoTools: []string{bin}})
	c := collect(s)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), helperEnv+"=fail-opens", "DIR="+dir, fmt.Sprint("N=", n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	start := time.Now()
	out, err := cmd.Output()
	elapsed := time.Since(start)
	if err != nil {
		tb.Fatalf("helper: %v", err)
	}
	if strings.TrimSpace(string(out)) != fmt.Sprint(n) {
		tb.Fatalf("helper saw %s EACCES, want %d", out, n)
	}
	var samples uint64
	for _, ev := range c.tree(tb, cmd.Process.Pid) {
		if f, ok := ev.(*FileFailureEvent); ok {
			if f.Class != ClassGOCACHE || f.Errno != syscall.EACCES || f.Path != filepath.Join(dir, "f") {
				tb.Errorf("unexpected sample %+v", f)
			}
			samples++
		}
	}
	st, err := s.Stats()
	if err != nil {
		tb.Fatal(err)
	}
	r := failingResult{st.Failures(ClassGOCACHE, syscall.EACCES), samples, st.TotalDrops(), elapsed}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	if r.Counted != uint64(n) || r.Samples != DefaultSampleLimit || r.Drops != 0 {
		tb.Errorf("%d failures: counted %d, samples %d (want %d), drops %v", n, r.Counted, r.Samples, DefaultSampleLimit, st.Drops)
	}
	return r
}

// TestCloseDetaches lists the kernel's programs and links: after Close none
// of the sensor's remains.
func TestCloseDetaches(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { testCloseDetaches(t, m.cfg) })
	}
}

func testCloseDetaches(t *testing.T, cfg Config) {
	cfg.Eager = true // gp_sock_state attached too
	s := openSensor(t, cfg)
	progs := []*ebpf.Program{s.objs.GpExec, s.objs.GpExit, s.objs.GpFork, s.objs.GpSockState}
	if cfg.Syscalls {
		progs = append(progs, s.objs.GpSysExit)
	} else {
		progs = append(progs, s.objs.GpGoSyscallError)
	}
	var ids []ebpf.ProgramID
	for _, p := range progs {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, ok := info.ID()
		if !ok {
			t.Fatal("program ID unavailable")
		}
		ids = append(ids, id)
	}
	// One link per tracepoint program, one per probed Go binary for the
	// uprobe.
	if got := linkedPrograms(t, ids); len(got) != len(ids) {
		t.Fatalf("after Open, %d of the sensor's %d programs have a link: %v", len(got), len(ids), got)
	}
	if !cfg.Syscalls {
		if n, want := len(s.toolLinks), len(s.GoTools()); n < want || want == 0 {
			t.Fatalf("%d uprobe links for %d probed Go binaries", n, want)
		}
	}
	if got := livePrograms(t, ids); len(got) != len(ids) {
		t.Fatalf("after Open, %d of %d programs listed: %v", len(got), len(ids), got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Events is closed after what was buffered (other trees on the
	// machine) drains.
	drained := make(chan struct{})
	go func() {
		for range s.Events() {
		}
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("Events not closed 5s after Close")
	}
	if got := linkedPrograms(t, ids); len(got) != 0 {
		t.Errorf("after Close, links remain for programs %v", got)
	}
	// The kernel frees a program after an RCU grace period: poll.
	deadline := time.Now().Add(5 * time.Second)
	for got := livePrograms(t, ids); len(got) != 0; got = livePrograms(t, ids) {
		if time.Now().After(deadline) {
			t.Fatalf("5s after Close, programs remain in the kernel: %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s.Stats(); err == nil {
		t.Error("Stats after Close did not fail")
	}
}

func livePrograms(t *testing.T, ours []ebpf.ProgramID) []ebpf.ProgramID {
	var live []ebpf.ProgramID
	id := ebpf.ProgramID(0)
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return live
		}
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(ours, next) {
			live = append(live, next)
		}
		id = next
	}
}

func linkedPrograms(t *testing.T, ours []ebpf.ProgramID) []ebpf.ProgramID {
	var linked []ebpf.ProgramID
	it := new(link.Iterator)
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil {
			continue // gone meanwhile
		}
		if slices.Contains(ours, info.Program) && !slices.Contains(linked, info.Program) {
			linked = append(linked, info.Program)
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return linked
}

// TestSetClasses: a class given through a symlink also matches the
// resolved path the process uses; a directory matches itself and below,
// not a sibling with the same prefix; bad directories are refused.
func TestSetClasses(t *testing.T) {
	cred := nobody(t)
	base := helperDir(t)
	realDir := filepath.Join(base, "realDir")
	if err := os.Mkdir(realDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sibling := realDir + "2"
	if err := os.Mkdir(sibling, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(realDir, link); err != nil {
		t.Fatal(err)
	}
	bin := helperBinary(t, base, "go")
	s := openSensor(t, Config{GoTools: []string{bin}})
	for _, bad := range []map[Class][]string{
		{ClassGOCACHE: {"relative/dir"}},
		{ClassGOCACHE: {"/" + strings.Repeat("x", 300)}},
		{ClassOther: {"/tmp"}},
		{ClassRelative: {"/tmp"}},
	} {
		if err := s.SetClasses(bad); err == nil {
			t.Errorf("SetClasses(%v) accepted", bad)
		}
	}
	if err := s.SetClasses(map[Class][]string{ClassGOBIN: {link}}); err != nil {
		t.Fatal(err)
	}
	c := collect(s)
	for _, dir := range []string{realDir, sibling} {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), helperEnv+"=workload", "DIR="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("workload in %s: %v\n%s", dir, err, out)
		}
		c.tree(t, cmd.Process.Pid)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// realDir/sub (EACCES) and realDir/missing (ENOENT) are GOBIN; the sibling's
	// are not.
	if a, e := st.Failures(ClassGOBIN, syscall.EACCES), st.Failures(ClassGOBIN, syscall.ENOENT); a != 1 || e != 1 {
		t.Errorf("GOBIN through symlink %s: EACCES %d, ENOENT %d, want 1 and 1 (%+v)", link, a, e, st.FileFailures)
	}
	var sawSibling bool
	for _, ev := range c.all() {
		if f, ok := ev.(*FileFailureEvent); ok && f.Path == filepath.Join(sibling, "sub") {
			sawSibling = true
			if f.Class != ClassOther {
				t.Errorf("sibling %s classified %s", f.Path, f.Class)
			}
		}
	}
	if !sawSibling {
		t.Errorf("no sample of the sibling's EACCES")
	}
}

// TestProbeOnExec: a go command that was not listed is probed when a tree
// first runs it, so its later runs' failures are counted.
func TestProbeOnExec(t *testing.T) {
	cred := nobody(t)
	base := helperDir(t)
	dir := filepath.Join(base, "cache")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := helperBinary(t, base, "go")
	// GoTools names another binary, so that the defaults do not apply.
	other := helperBinary(t, base, "other")
	s := openSensor(t, Config{Classes: map[Class][]string{ClassGOCACHE: {dir}}, GoTools: []string{other}})
	c := collect(s)
	run := func() int {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), helperEnv+"=fail-opens", "DIR="+dir, "N=3")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("helper: %v\n%s", err, out)
		}
		c.tree(t, cmd.Process.Pid)
		return cmd.Process.Pid
	}
	run()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.ContainsFunc(s.GoTools(), func(g GoTool) bool { return g.Path == bin }) {
		if time.Now().After(deadline) {
			t.Fatalf("%s not probed 5s after its exec in a tree; probed: %+v", bin, s.GoTools())
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	before := st.Failures(ClassGOCACHE, syscall.EACCES)
	root := run()
	if st, err = s.Stats(); err != nil {
		t.Fatal(err)
	}
	if n := st.Failures(ClassGOCACHE, syscall.EACCES) - before; n != 3 {
		t.Errorf("second run (pid %d): %d EACCES counted, want 3", root, n)
	}
	// Seen once, probed once: a third run must not add a second uprobe.
	// Only this test's binaries are counted: any go command that runs on
	// the machine meanwhile starts a tree and is probed too.
	run()
	for _, p := range []string{bin, other} {
		if n := len(slices.DeleteFunc(s.GoTools(), func(g GoTool) bool { return g.Path != p })); n != 1 {
			t.Errorf("%s probed %d times, want once: %+v", p, n, s.GoTools())
		}
	}
}

// TestTreeScope: gp_sock_state is attached only while a tree is alive, and
// detached once the linger time after the last tree has passed.
func TestTreeScope(t *testing.T) {
	base := helperDir(t)
	// A name of its own starts this test's trees: every go command that
	// other tests (or anything else on the machine) run would start a
	// tree under the default name and keep the scope attached.
	const name = "gpscopetest"
	bin := helperBinary(t, base, name)
	ln := acceptor(t)
	const linger = 300 * time.Millisecond
	s := openSensor(t, Config{GoNames: []string{name}, GoTools: []string{bin}, Linger: linger})
	c := collect(s)
	if s.ScopeAttached() {
		t.Fatal("tree-scoped programs attached at Open with no tree alive")
	}
	ready := filepath.Join(base, "ready")
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), helperEnv+"=dial-when", "READY="+ready, "ADDR="+ln.Addr().String())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "scoped programs attached after a tree started", s.ScopeAttached)
	if err := os.WriteFile(ready, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out.String())
	}
	saw := false
	for _, ev := range c.tree(t, cmd.Process.Pid) {
		if ce, ok := ev.(*ConnectEvent); ok && ce.Addr.String() == ln.Addr().String() && ce.Errno == 0 {
			saw = true
		}
	}
	if !saw {
		t.Errorf("no connect event of the tree %d while the scoped programs were attached", cmd.Process.Pid)
	}
	waitFor(t, "scoped programs detached after the linger time", func() bool { return !s.ScopeAttached() })
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.ScopeAttaches != 1 || st.MaxScopeLatency <= 0 || st.MaxScopeLatency > 5*time.Second {
		t.Errorf("scope stats: %d attaches, max latency %v", st.ScopeAttaches, st.MaxScopeLatency)
	}
	t.Logf("from the root's exec to attached: %v", st.MaxScopeLatency)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
	}
}

// TestEnvOfShortLivedGo: a go command that exits at once, started in a
// mount namespace of its own through a bind mount and a symbolic link,
// still leaves its environment: its variables, its executable with the
// link resolved and its working directory as paths in its namespace, and
// the namespace. An environment longer than EnvironMax is cut and says so.
func TestEnvOfShortLivedGo(t *testing.T) {
	unshare := testgate.Tool(t, "unshare", "util-linux")
	base := helperDir(t)
	real, mnt := filepath.Join(base, "real"), filepath.Join(base, "mnt")
	for _, d := range []string{filepath.Join(real, "bin"), filepath.Join(real, "sub", "dir"), mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	helperBinary(t, filepath.Join(real, "bin"), "go-real")
	if err := os.Symlink("go-real", filepath.Join(real, "bin", "go")); err != nil {
		t.Fatal(err)
	}
	s := openSensor(t, Config{Environ: true})
	c := collect(s)
	// A sensor not asked for environments drops them as it decodes.
	plain := collect(openSensor(t, Config{}))
	huge := strings.Repeat("x", EnvironMax)
	for _, tt := range []struct {
		name      string
		env       []string
		truncated bool
	}{
		{"short", []string{"GOFLAGS=-mod=mod", "SECRET_TOKEN=s3cr3t"}, false},
		{"longer than EnvironMax", []string{"GOFLAGS=-mod=mod", "BIG=" + huge}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			script := fmt.Sprintf("mount --make-rprivate / && mount --bind %s %s && readlink /proc/self/ns/mnt && cd %s/sub/dir && exec %s/bin/go",
				real, mnt, mnt, mnt)
			cmd := exec.Command(unshare, "-m", "sh", "-c", script)
			cmd.Env = append([]string{helperEnv + "=exit", "PATH=/usr/bin:/bin"}, tt.env...)
			out, err := cmd.Output()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Fatalf("%s: %v, want the helper's exit 2: %s", script, err, out)
			}
			ns := strings.TrimSpace(string(out))
			var got *EnvEvent
			for _, ev := range c.tree(t, cmd.Process.Pid) {
				if e, ok := ev.(*EnvEvent); ok {
					if got != nil {
						t.Errorf("second env event %+v", e)
					}
					got = e
				}
			}
			if got == nil {
				t.Fatalf("no env event of %d", cmd.Process.Pid)
			}
			for _, ev := range plain.tree(t, cmd.Process.Pid) {
				if e, ok := ev.(*EnvEvent); ok && (e.Environ != nil || e.Cwd != got.Cwd) {
					t.Errorf("a sensor without Environ: %+v, %d bytes of environment, want none", e, len(e.Environ))
				}
			}
			if fmt.Sprintf("mnt:[%d]", got.MountNS) != ns || got.Exe != mnt+"/bin/go-real" || got.Cwd != mnt+"/sub/dir" ||
				got.UID != 0 || got.PPID != uint32(os.Getpid()) || got.EnvironTruncated != tt.truncated {
				t.Errorf("env event %+v: want namespace %s, exe %s/bin/go-real, cwd %s/sub/dir, truncated %v",
					got, ns, mnt, mnt, tt.truncated)
			}
			vars := strings.Split(strings.TrimSuffix(string(got.Environ), "\x00"), "\x00")
			if tt.truncated {
				if len(got.Environ) != EnvironMax || !strings.HasPrefix(vars[len(vars)-1], "BIG=xxx") {
					t.Errorf("cut environment: %d bytes ending %q, want %d", len(got.Environ), tail(string(got.Environ)), EnvironMax)
				}
				return
			}
			if !slices.Contains(vars, "GOFLAGS=-mod=mod") || !slices.Contains(vars, "SECRET_TOKEN=s3cr3t") {
				t.Errorf("environment %q: want the go command's own", vars)
			}
		})
	}
}
