package buildtrace

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// waterfallWidth is the width of the bar column.
const waterfallWidth = 40

// Waterfall prints b as an indented tree, one line per span: its offset
// from the build's start, its duration, a bar placing it in the build's
// time, its name and status; file failures under their process.
func Waterfall(w io.Writer, clock Clock, b *Build) error {
	root := b.Root
	total := max(root.Duration(), time.Microsecond)
	head := fmt.Sprintf("%s %s", clock.Wall(root.Start).Format("15:04:05.000"), root.Name)
	if len(b.Patterns) > 0 {
		head += " " + strings.Join(b.Patterns, " ")
	}
	head += fmt.Sprintf(" — %s in %v, critical path %v (uid %d", outcome(b), root.Duration().Round(time.Millisecond), b.CriticalPath.Round(time.Millisecond), b.UID)
	if b.ContainerID != "" {
		head += ", container " + b.ContainerID[:12]
	}
	if b.PodUID != "" {
		head += ", pod " + b.PodUID
	}
	head += ")\n"
	if _, err := io.WriteString(w, head); err != nil {
		return err
	}
	var err error
	var line func(s *Span, depth int)
	line = func(s *Span, depth int) {
		if err != nil {
			return
		}
		off := s.Start - root.Start
		from := int(int64(off) * waterfallWidth / int64(total))
		to := int(int64(s.End-root.Start) * waterfallWidth / int64(total))
		from = min(max(from, 0), waterfallWidth-1)
		to = min(max(to, from+1), waterfallWidth)
		bar := strings.Repeat(" ", from) + strings.Repeat("█", to-from) + strings.Repeat(" ", waterfallWidth-to)
		status := ""
		if s.Unfinished {
			status = "  (still running)"
		} else if s.Failed() {
			status = "  ✗ " + statusText(s)
		}
		detail := ""
		if s.Server != "" {
			detail = " " + s.Server
			if s.Port != 0 {
				detail += fmt.Sprintf(":%d", s.Port)
			}
		}
		_, err = fmt.Fprintf(w, "  %9s %9s |%s| %s%s%s%s\n", fmtDur(off), fmtDur(s.Duration()), bar,
			strings.Repeat("  ", depth), s.Name, detail, status)
		for _, e := range s.Events {
			if err != nil {
				return
			}
			what := e.Errno + " " + e.Class
			if e.Syscall != "" {
				what = e.Errno + " " + e.Syscall + " " + e.Class
			}
			if e.Path != "" {
				what += " " + e.Path
			}
			_, err = fmt.Fprintf(w, "  %9s %9s  %*s %s  ! %s\n", fmtDur(e.Time-root.Start), "", waterfallWidth, "", strings.Repeat("  ", depth), what)
		}
		for _, c := range s.Children {
			line(c, depth+1)
		}
	}
	line(root, 0)
	if err == nil && len(b.Slowest) > 0 {
		parts := make([]string, len(b.Slowest))
		for i, s := range b.Slowest {
			parts[i] = fmt.Sprintf("%s %s", s.Package, fmtDur(s.Duration()))
		}
		_, err = fmt.Fprintf(w, "  slowest: %s\n", strings.Join(parts, ", "))
	}
	return err
}

func outcome(b *Build) string {
	switch {
	case b.Incomplete:
		return "incomplete"
	case b.Failed:
		return "FAILED " + statusText(b.Root)
	}
	return "ok"
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}
