package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/gopatrol/gopatrol/agent/buildtrace"
	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/fileclass"
	"github.com/gopatrol/gopatrol/bpf"
	"github.com/gopatrol/gopatrol/bpf/feature"
	"github.com/gopatrol/gopatrol/bpf/tlsprobe"
)

type traceFlags struct {
	output      string
	duration    time.Duration
	goNames     []string
	goBin       string
	sampleLimit uint32
	ringSize    int
	noTLS       bool
	syscalls    bool
	bpfStats    bool
	lazy        bool
	builds      bool
}

func newTraceCmd() *cobra.Command {
	var f traceFlags
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Watch the Go toolchain at work: execs, refused files, connects, TLS handshakes",
		Long: `trace follows every go command on this machine and everything it runs
(compile, link, asm, cgo, gcc, ...) through eBPF, grouped by top-level go
invocation, with file-access failures under GOROOT, GOMODCACHE, GOCACHE,
GOBIN and GOTMPDIR, connects and TLS handshakes inline.

It needs root, or CAP_BPF and CAP_PERFMON (plus CAP_SYS_ADMIN for uprobes
on some kernels), and a kernel with BTF; when something is missing it says
what and exits 2. Stop it with Ctrl-C or --duration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTrace(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text (grouped live view) or json (one event per line)")
	fl.DurationVar(&f.duration, "duration", 0, "stop after this long (default: until interrupted)")
	fl.StringSliceVar(&f.goNames, "go-name", []string{"go"}, "executable names that start a toolchain tree")
	fl.StringVar(&f.goBin, "go", "", "the go binary whose `go env` directories classify file failures (default: the first go on PATH)")
	fl.Uint32Var(&f.sampleLimit, "samples", bpf.DefaultSampleLimit, "file failures streamed with their path per (directory, errno); all are counted")
	fl.IntVar(&f.ringSize, "ring-size", bpf.DefaultRingSize, "ring buffer size in bytes (a power of two)")
	fl.BoolVar(&f.noTLS, "no-tls", false, "do not attach the TLS handshake probes")
	fl.BoolVar(&f.syscalls, "syscalls", false, "see file failures of every process in a tree (gcc, git too) on the sys_exit tracepoint; every syscall on the machine then pays for it (docs/benchmarks.md)")
	fl.BoolVar(&f.lazy, "lazy", false, "attach the connect and TLS-socket hooks only while a go command runs, as the agent does (a tree's first millisecond is then not seen)")
	fl.BoolVar(&f.builds, "builds", false, "print each finished build as an indented waterfall of its processes with durations (docs/traces.md), instead of the live event view")
	fl.BoolVar(&f.bpfStats, "bpf-stats", false, "turn on the kernel's BPF statistics for per-program run counts and times; every BPF program on the machine then pays two clock reads per run")
	return cmd
}

func runTrace(ctx context.Context, stdout, stderr io.Writer, f traceFlags) error {
	if err := validOutput(f.output); err != nil {
		return err
	}
	if f.duration < 0 {
		return usageErr("--duration %v: must not be negative", f.duration)
	}
	if f.ringSize <= 0 || f.ringSize&(f.ringSize-1) != 0 || f.ringSize < os.Getpagesize() {
		return usageErr("--ring-size %d: want a power of two of at least %d bytes", f.ringSize, os.Getpagesize())
	}
	for _, n := range f.goNames {
		if n == "" || strings.Contains(n, "/") {
			return usageErr("--go-name %q: want an executable name, without directory", n)
		}
	}
	tc, err := traceToolchain(ctx, f.goBin)
	if err != nil {
		return err
	}
	if err := feature.Check(); err != nil {
		return &exitError{code: 2, err: err}
	}
	log := slog.Default()

	if tc.Err != nil {
		log.Warn("file failures will not be classified", "err", tc.Err)
	}
	classes := fileclass.Of(tc)
	// The go command named by --go and its GOROOT's tools get the
	// syscall-error probes; others are probed when a tree first runs them.
	var tools []string
	if tc.Err == nil {
		tools = bpf.ToolchainBinaries(tc.Go)
	}
	s, err := bpf.Open(bpf.Config{
		GoNames: f.goNames, Classes: classes, RingSize: f.ringSize,
		SampleLimit: f.sampleLimit, Logger: log, Syscalls: f.syscalls,
		RunTime: f.bpfStats, GoTools: tools, Eager: !f.lazy,
	})
	if err != nil {
		if feature.IsMissing(err) {
			return &exitError{code: 2, err: err}
		}
		return err
	}
	defer s.Close()
	if !f.noTLS {
		p, err := tlsprobe.Attach(s, tlsprobe.Config{Logger: log})
		if err != nil {
			log.Warn("TLS handshakes will not be traced", "err", err)
		} else {
			for _, sk := range p.Skipped {
				log.Warn("TLS probe not attached", "path", sk.Path, "reason", sk.Reason)
			}
		}
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}

	var out traceOutput
	if f.builds {
		if f.output != "text" {
			return usageErr("--builds prints text waterfalls: drop -o %s", f.output)
		}
		out = newBuildsTrace(stdout, f.goNames, true)
	} else if f.output == "json" {
		out = &jsonTrace{enc: json.NewEncoder(stdout), clock: buildtrace.NewClock()}
	} else {
		out = newTextTrace(stdout)
	}
	// The banner goes to stderr in both modes: it also says "attached".
	fmt.Fprintf(stderr, "gopatrol trace: watching %s trees (Ctrl-C to stop)\n", strings.Join(f.goNames, ", "))
	if f.syscalls {
		fmt.Fprintf(stderr, "  file failures of every tree process, on sys_exit\n")
	} else {
		fmt.Fprintf(stderr, "  file failures of %d Go binaries (and any go or GOROOT tool a tree runs)\n", len(s.GoTools()))
	}
	for c, dirs := range classes {
		fmt.Fprintf(stderr, "  %-10s %s\n", c, strings.Join(dirs, " "))
	}
	events := s.Events()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case ev, ok := <-events:
			if !ok {
				break loop
			}
			if err := out.event(ev); err != nil {
				return fmt.Errorf("trace: write: %w", err)
			}
		}
	}
	st, err := s.Stats()
	if err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("trace: detach: %w", err)
	}
	return out.stats(st, stderr)
}

// goEnvTimeout bounds the one `go env` of trace: a go on PATH that hangs
// (a wrapper script waiting on something) must not stop trace from
// starting, nor leave it waiting forever.
const goEnvTimeout = 10 * time.Second

// traceToolchain resolves the toolchain whose directories classify file
// failures, the doctor's way (check.ResolveToolchain: its go env runs in
// its own process group, killed at the deadline). An explicit --go that
// does not answer is an error; the default go's failure is only recorded.
func traceToolchain(ctx context.Context, goBin string) (*check.Toolchain, error) {
	target, err := check.LocalTarget()
	if err != nil {
		return nil, usageErr("%v", err)
	}
	if goBin != "" && !strings.Contains(goBin, "/") {
		// A bare name (go1.22) is looked up on PATH, as a shell would.
		p, err := exec.LookPath(goBin)
		if err != nil {
			return nil, usageErr("--go %s: %v", goBin, err)
		}
		goBin = p
	}
	ctx, cancel := context.WithTimeout(ctx, goEnvTimeout)
	defer cancel()
	tc, err := check.ResolveToolchain(ctx, target, goBin)
	if ctx.Err() == context.DeadlineExceeded {
		// Whatever ResolveToolchain made of the killed process, the cause
		// is the deadline: say so, and name the binary.
		name := goBin
		if tc != nil && tc.Go != "" {
			name = tc.Go
		}
		if name == "" {
			name = "the first go on PATH"
		}
		err = fmt.Errorf("`go env` did not answer within %v: %s hangs (a wrapper script waiting on something?); name a working toolchain with --go", goEnvTimeout, name)
		if goBin == "" {
			return &check.Toolchain{Err: err}, nil
		}
	}
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return tc, nil
}

type traceOutput interface {
	event(bpf.Event) error
	stats(bpf.Stats, io.Writer) error
}

type jsonTrace struct {
	enc   *json.Encoder
	clock buildtrace.Clock
}

func (j *jsonTrace) event(ev bpf.Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	h := ev.EventHeader()
	prefix, _ := json.Marshal(struct {
		Type string    `json:"type"`
		Time time.Time `json:"time"`
	}{h.Type.String(), j.clock.Wall(h.Time)})
	// Splice {"type":..,"time":..} and the event's own fields into one object.
	line := append(prefix[:len(prefix)-1:len(prefix)-1], ',')
	if len(body) > 2 {
		line = append(line, body[1:]...)
	} else {
		line[len(line)-1] = '}'
	}
	return j.enc.Encode(json.RawMessage(line))
}

func (j *jsonTrace) stats(st bpf.Stats, _ io.Writer) error {
	type failure struct {
		Class string `json:"class"`
		Errno string `json:"errno"`
		Count uint64 `json:"count"`
	}
	type program struct {
		Name      string `json:"name"`
		RunCount  uint64 `json:"run_count"`
		RunTimeNs int64  `json:"run_time_ns"`
	}
	out := struct {
		Type          string            `json:"type"`
		Events        uint64            `json:"events"`
		DecodeErrors  uint64            `json:"decode_errors"`
		UnknownEvents uint64            `json:"unknown_events"`
		Drops         map[string]uint64 `json:"drops"`
		Failures      []failure         `json:"file_failures"`
		Programs      []program         `json:"programs"`
	}{Type: "stats", Events: st.Events, DecodeErrors: st.DecodeErrors, UnknownEvents: st.UnknownEvents, Drops: map[string]uint64{}}
	for t, n := range st.Drops {
		out.Drops[t.String()] = n
	}
	for _, f := range st.FileFailures {
		out.Failures = append(out.Failures, failure{f.Class.String(), bpf.ErrnoName(f.Errno), f.Count})
	}
	for _, p := range st.Programs {
		out.Programs = append(out.Programs, program{p.Name, p.RunCount, p.RunTime.Nanoseconds()})
	}
	return j.enc.Encode(out)
}

// textTrace prints a live view: each line is tagged with its tree (the
// top-level go command and its pid); a tree's summary comes when its go
// command exits.
type textTrace struct {
	w     io.Writer
	clock buildtrace.Clock
	trees map[uint32]*tree
	comms map[uint32]string // pid -> what it ran, for exit lines
}

type tree struct {
	label                          string
	counts                         map[string]int
	failures, connects, handshakes int
}

func newTextTrace(w io.Writer) *textTrace {
	return &textTrace{w: w, clock: buildtrace.NewClock(), trees: map[uint32]*tree{}, comms: map[uint32]string{}}
}

func (t *textTrace) tree(root uint32) *tree {
	tr := t.trees[root]
	if tr == nil {
		// The go command started before trace did: no exec seen.
		tr = &tree{label: fmt.Sprintf("go[%d]", root), counts: map[string]int{}}
		t.trees[root] = tr
	}
	return tr
}

func (t *textTrace) line(h bpf.Header, indent bool, format string, a ...any) error {
	tr := t.tree(h.RootPID)
	pad := ""
	if indent {
		pad = "  "
	}
	_, err := fmt.Fprintf(t.w, "%s %s %s%s\n", t.clock.Wall(h.Time).Format("15:04:05.000"), tr.label, pad, fmt.Sprintf(format, a...))
	return err
}

func (t *textTrace) event(ev bpf.Event) error {
	h := ev.EventHeader()
	switch ev := ev.(type) {
	case *bpf.ExecEvent:
		if ev.PID == ev.RootPID && t.trees[ev.RootPID] == nil {
			t.trees[ev.RootPID] = &tree{label: fmt.Sprintf("[%s %d]", goSubcommand(ev.Args), ev.PID), counts: map[string]int{}}
			t.comms[ev.PID] = "go"
			return t.line(h, false, "%s (uid %d)", shortArgs(ev.Args, 12), ev.UID)
		}
		tool := filepath.Base(ev.Filename)
		t.tree(h.RootPID).counts[tool]++
		t.comms[ev.PID] = tool
		if tool == "compile" {
			if p := argAfter(ev.Args, "-p"); p != "" {
				return t.line(h, true, "compile -p %s", p)
			}
		}
		return t.line(h, true, "%s", shortArgs(ev.Args, 8))
	case *bpf.ExitEvent:
		name := t.comms[ev.PID]
		delete(t.comms, ev.PID)
		if ev.PID == ev.RootPID {
			tr := t.tree(ev.RootPID)
			err := t.line(h, false, "done: %s in %v; %s", exitText(ev), ev.Duration.Round(time.Millisecond), tr.summary())
			delete(t.trees, ev.RootPID)
			return err
		}
		if ev.WaitStatus != 0 {
			if name == "" {
				name = ev.Comm
			}
			return t.line(h, true, "%s [%d] %s after %v", name, ev.PID, exitText(ev), ev.Duration.Round(time.Millisecond))
		}
		return nil
	case *bpf.FileFailureEvent:
		t.tree(h.RootPID).failures++
		op := ev.Error
		if ev.Syscall != "" {
			op += " " + ev.Syscall
		}
		return t.line(h, true, "! %s %s (%s) [pid %d]", op, ev.Path, ev.Class, ev.PID)
	case *bpf.ConnectEvent:
		t.tree(h.RootPID).connects++
		res := "ok"
		if ev.Errno != 0 {
			res = ev.Error
		}
		return t.line(h, true, "→ connect %s %s in %v [pid %d]", ev.Addr, res, ev.Duration.Round(100*time.Microsecond), ev.PID)
	}
	if h.Type >= bpf.FirstExtensionType {
		t.tree(h.RootPID).handshakes++
	}
	if str, ok := ev.(fmt.Stringer); ok {
		return t.line(h, true, "⇄ %s [pid %d]", str, h.PID)
	}
	body, _ := json.Marshal(ev)
	return t.line(h, true, "⇄ %s %s", h.Type, body)
}

func (tr *tree) summary() string {
	names := make([]string, 0, len(tr.counts))
	for n := range tr.counts {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if tr.counts[names[i]] != tr.counts[names[j]] {
			return tr.counts[names[i]] > tr.counts[names[j]]
		}
		return names[i] < names[j]
	})
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s ×%d", n, tr.counts[n]))
	}
	if len(parts) == 0 {
		parts = append(parts, "no tools run")
	}
	return fmt.Sprintf("%s; %d file failures, %d connects, %d TLS events", strings.Join(parts, ", "), tr.failures, tr.connects, tr.handshakes)
}

func (t *textTrace) stats(st bpf.Stats, w io.Writer) error {
	fmt.Fprintf(w, "gopatrol trace: %d events, %d lost (ring buffer full), %d undecodable\n", st.Events, st.TotalDrops(), st.DecodeErrors)
	for _, f := range st.FileFailures {
		fmt.Fprintf(w, "  failures %-10s %-7s %d\n", f.Class, bpf.ErrnoName(f.Errno), f.Count)
	}
	for _, p := range st.Programs {
		if p.RunCount > 0 || st.RunTimeEnabled {
			fmt.Fprintf(w, "  program %-24s runs %-10d time %v\n", p.Name, p.RunCount, p.RunTime)
		}
	}
	return nil
}

func exitText(ev *bpf.ExitEvent) string {
	if sig := ev.Signal(); sig != 0 {
		return "killed by " + unix.SignalName(sig)
	}
	return fmt.Sprintf("exit %d", ev.ExitCode())
}

// goSubcommand is "go build" for argv [go build -a ./...].
func goSubcommand(args []string) string {
	for _, a := range args[min(1, len(args)):] {
		if !strings.HasPrefix(a, "-") {
			return "go " + a
		}
	}
	return "go"
}

func argAfter(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func shortArgs(args []string, n int) string {
	if len(args) == 0 {
		return "?"
	}
	args = append([]string{filepath.Base(args[0])}, args[1:]...)
	s := strings.Join(args[:min(n, len(args))], " ")
	if len(args) > n {
		s += " …"
	}
	if len(s) > 160 {
		s = s[:157] + "…"
	}
	return s
}
