package buildtrace

import (
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/gopatrol/gopatrol/agent/sense"
)

// Span is one process of a build (or one connect or TLS handshake of a
// process). Times are CLOCK_MONOTONIC, as the sensors report them.
type Span struct {
	Kind string
	// Name is what the span is called: "go build", "compile example.com/m/a",
	// "link", "connect".
	Name    string
	PID     uint32
	Package string // compile, asm, cgo: the import path of -p
	// Subcommand and Patterns are a go command's (GoCommand).
	Subcommand string
	Patterns   []string
	Start, End time.Duration
	// Ended says End is known; Unfinished that the span was still open
	// when its tree ended or expired, and End is that moment.
	Ended, Unfinished bool
	// Exit is the exit status, -1 when a signal (Signal) ended the process
	// or its exit was not seen.
	Exit, Signal int
	// Server, Port, Outcome and ErrorType describe a connect or handshake.
	Server    string
	Port      int
	Outcome   string
	ErrorType string

	Events        []FileEvent
	DroppedEvents int
	Children      []*Span
	DroppedSpans  int
}

// FileEvent is a file-access failure of the span's process.
type FileEvent struct {
	Time    time.Duration
	Errno   string // ENOENT, EACCES, ...
	Class   string // goroot, gomodcache, ...
	Syscall string
	Path    string // only with Config.Paths
}

// Build is one finished go invocation tree.
type Build struct {
	Root       *Span
	Subcommand string
	Patterns   []string
	UID        uint32
	// ContainerID and PodUID come from the go command's cgroup path.
	ContainerID, PodUID string
	Failed              bool
	// Incomplete says the tree did not end within Config.MaxAge.
	Incomplete bool
	// Reason says why the build was kept: failed, incomplete, slow,
	// sampled or all.
	Reason string
	// CriticalPath is the tool time along Critical (criticalPath).
	CriticalPath time.Duration
	Critical     []*Span
	// Slowest are the slowest compile spans, slowest first.
	Slowest []*Span
}

// Duration is the root span's.
func (b *Build) Duration() time.Duration { return b.Root.Duration() }

func (b *Build) reason(slow time.Duration) string {
	switch {
	case b.Incomplete:
		return "incomplete"
	case b.Failed:
		return "failed"
	case b.Duration() >= slow:
		return "slow"
	}
	return "all"
}

// Duration is End-Start, 0 for a span that never ended.
func (s *Span) Duration() time.Duration {
	if !s.Ended || s.End < s.Start {
		return 0
	}
	return s.End - s.Start
}

// Failed says the span's process (or connect, handshake) failed.
func (s *Span) Failed() bool {
	switch s.Kind {
	case KindConnect, KindTLS:
		return s.ErrorType != ""
	}
	return s.Ended && !s.Unfinished && s.Exit != 0
}

func (s *Span) addChild(c *Span) {
	if len(s.Children) >= maxChildren {
		s.DroppedSpans++
		return
	}
	s.Children = append(s.Children, c)
}

func (s *Span) walk(f func(*Span)) {
	f(s)
	for _, c := range s.Children {
		c.walk(f)
	}
}

// isProcess says the span is a process, not a connect or handshake.
func (s *Span) isProcess() bool { return s.Kind != KindConnect && s.Kind != KindTLS }

// criticalPath walks back from the end of root: the child that ended last
// before the cursor is on the path, the cursor moves to its start, and so
// on; a go command's children are walked the same way (its own time is
// scheduling and waiting), any other process counts whole. The length is
// the tool time along that chain: how long the build would take with
// infinite parallelism and the same process times.
func criticalPath(root *Span) (time.Duration, []*Span) {
	var path []*Span
	var walk func(s *Span, end time.Duration) time.Duration
	walk = func(s *Span, end time.Duration) time.Duration {
		var total time.Duration
		cursor := end
		for {
			var next *Span
			for _, c := range s.Children {
				if !c.isProcess() || c.End > cursor || c.Start >= cursor {
					continue
				}
				if next == nil || c.End > next.End {
					next = c
				}
			}
			if next == nil {
				return total
			}
			path = append(path, next)
			if next.Kind == KindGo && len(next.Children) > 0 {
				total += walk(next, next.End)
			} else {
				total += next.End - max(next.Start, s.Start)
			}
			cursor = next.Start
		}
	}
	n := walk(root, root.End)
	// The walk went backwards, and into go commands: show the path in
	// time order, a go command before what it ran.
	sort.SliceStable(path, func(i, j int) bool { return path[i].Start < path[j].Start })
	return n, path
}

func connectResult(errno syscall.Errno) string { return sense.ConnectResult(errno) }

// firstWord is "mod" of "mod download": the metric's bounded subcommand.
func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	if w == "" {
		return sense.SubcommandUnknown
	}
	return w
}
