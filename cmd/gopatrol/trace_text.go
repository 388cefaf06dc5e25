package main

// trace's default view: live lines per go invocation tree, a summary per tree.

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gopatrol/gopatrol/agent/buildtrace"
	"github.com/gopatrol/gopatrol/bpf"
)

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
	case *bpf.EnvEvent:
		// Its variables hold secrets: only where it runs is shown.
		return t.line(h, true, "go command in %s, running %s [pid %d]", ev.Cwd, ev.Exe, ev.PID)
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
