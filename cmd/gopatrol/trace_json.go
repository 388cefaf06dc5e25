package main

// trace --json: one JSON object per sensor event, and the counters at the end.

import (
	"encoding/json"
	"io"
	"time"

	"github.com/gopatrol/gopatrol/agent/buildtrace"
	"github.com/gopatrol/gopatrol/bpf"
)

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
