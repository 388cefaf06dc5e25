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
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

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
