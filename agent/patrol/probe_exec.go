package patrol

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// execOutputCap bounds what an exec rule's command may print.
const execOutputCap = 64 << 10

type execProbe struct {
	argv    []string
	timeout time.Duration
}

// execMessageCap bounds the message taken from its first line.
const execMessageCap = 1 << 10

// cappedBuffer keeps the first execOutputCap bytes and drops the rest, so
// a chatty command cannot grow the agent. (Not an embedded bytes.Buffer:
// its ReadFrom would let os/exec bypass Write.)
type cappedBuffer struct{ buf bytes.Buffer }

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := execOutputCap - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Probe runs the command in its own process group: exit 0 is healthy (0),
// exit 1 a breach (1), anything else unknown. The first line of its output
// is the message. The whole group is killed at the timeout and at the end,
// so nothing it started outlives the evaluation.
func (p execProbe) Probe(ctx context.Context) []Sample {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.argv[0], p.argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var out cappedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // leftovers of the group
	}
	line, _, _ := strings.Cut(strings.TrimSpace(out.buf.String()), "\n")
	line = strings.TrimSpace(line)
	if len(line) > execMessageCap {
		line = line[:execMessageCap] + "…"
	}
	if ctx.Err() != nil {
		return []Sample{{Err: fmt.Errorf("%s: timed out after %s", p.argv[0], p.timeout), Message: line}}
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return []Sample{{Value: 0, Message: line}}
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return []Sample{{Value: 1, Message: line}}
	case errors.As(err, &ee):
		return []Sample{{Err: fmt.Errorf("%s: exit status %d (0 is healthy, 1 a breach)", p.argv[0], ee.ExitCode()), Message: line}}
	}
	return []Sample{{Err: fmt.Errorf("exec rule: %w", err), Message: line}}
}
