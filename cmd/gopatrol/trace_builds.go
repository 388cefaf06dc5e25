package main

import (
	"fmt"
	"io"

	"github.com/gopatrol/gopatrol/agent/buildtrace"
	"github.com/gopatrol/gopatrol/bpf"
)

// buildsTrace is `gopatrol trace --builds`: each go invocation tree, once
// it ends, as an indented waterfall (buildtrace.Waterfall), every build
// kept.
type buildsTrace struct {
	w     io.Writer
	b     *buildtrace.Builder
	clock buildtrace.Clock
	err   error
}

func newBuildsTrace(w io.Writer, goNames []string, paths bool) *buildsTrace {
	t := &buildsTrace{w: w, clock: buildtrace.NewClock()}
	t.b = buildtrace.New(buildtrace.Config{GoNames: goNames, KeepAll: true, Paths: paths}, func(b *buildtrace.Build) {
		if t.err == nil {
			t.err = buildtrace.Waterfall(t.w, t.clock, b)
		}
	})
	return t
}

func (t *buildsTrace) event(ev bpf.Event) error {
	t.b.Event(ev)
	if ev.EventHeader().Type == bpf.TypeExit {
		// A tree that never ends is shown (marked) after the bound.
		t.b.Sweep(buildtrace.Monotonic())
	}
	return t.err
}

func (t *buildsTrace) stats(st bpf.Stats, w io.Writer) error {
	bs := t.b.Stats()
	fmt.Fprintf(w, "gopatrol trace: %d builds shown, %d still running, %d events lost (ring buffer full)\n",
		bs.Kept, bs.Open, st.TotalDrops())
	return nil
}
