package check

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// MaxOutput bounds what the doctor keeps of one stream of a command's
// output and of one file it reads: a broken `go` that prints a gigabyte
// must not make the doctor's memory grow with it. The go commands the
// checks run print kilobytes; `go list -deps` of a large module prints a
// few megabytes.
const MaxOutput = 8 << 20

// CappedWriter keeps the first Max bytes written to it and counts the rest.
// It never fails a write, so a command that prints too much is not killed
// by a broken pipe halfway through what it was doing; the deadline ends it.
type CappedWriter struct {
	Max     int
	buf     bytes.Buffer
	dropped int64
}

// Write keeps what fits under Max and drops the rest.
func (w *CappedWriter) Write(p []byte) (int, error) {
	room := w.Max - w.buf.Len()
	if room < 0 {
		room = 0
	}
	keep := min(room, len(p))
	w.buf.Write(p[:keep])
	w.dropped += int64(len(p) - keep)
	return len(p), nil
}

// Bytes is what was kept.
func (w *CappedWriter) Bytes() []byte { return w.buf.Bytes() }

// Cut reports whether anything was dropped.
func (w *CappedWriter) Cut() bool { return w.dropped > 0 }

// Note says what was dropped, or "" when nothing was.
func (w *CappedWriter) Note() string {
	if w.dropped == 0 {
		return ""
	}
	return fmt.Sprintf("output cut after %d bytes, %d more dropped", w.Max, w.dropped)
}

// Output is what a command printed, each stream capped at MaxOutput.
type Output struct {
	Stdout, Stderr []byte
	// Cut says which stream was cut and by how much; "" when nothing was.
	Cut string
}

// Run runs cmd, made by Target.Command (which gives it its own process
// group, a Cancel that kills the group and a WaitDelay for its pipes),
// to its end and returns what it printed. Afterwards it kills what is left
// of the group: a grandchild that the command started in the background
// and that still holds its output open must not outlive the check. The
// deadline is cmd's context: the runner gives every check one, and
// ResolveToolchain its own.
func Run(cmd *exec.Cmd) (Output, error) {
	stdout, stderr := &CappedWriter{Max: MaxOutput}, &CappedWriter{Max: MaxOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := start(cmd)
	out := Output{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Cut: joinNotes("stdout", stdout, "stderr", stderr)}
	return out, err
}

// CombinedOutput runs cmd like Run with stdout and stderr interleaved in
// one capped stream; when it was cut, the output ends with a line that
// says so.
func CombinedOutput(cmd *exec.Cmd) ([]byte, error) {
	w := &CappedWriter{Max: MaxOutput}
	cmd.Stdout, cmd.Stderr = w, w
	err := start(cmd)
	out := w.Bytes()
	if w.Cut() {
		out = append(out, "\n[gopatrol: "+w.Note()+"]\n"...)
	}
	return out, err
}

func start(cmd *exec.Cmd) error {
	var err error
	if n, ok := niced.LoadAndDelete(cmd); ok {
		err = startNiced(cmd, n.(priority))
	} else {
		err = cmd.Start()
	}
	if err != nil {
		return err
	}
	err = cmd.Wait()
	if cmd.SysProcAttr != nil && cmd.SysProcAttr.Setpgid {
		// The group's id is the leader's pid, which stays reserved while
		// any member lives, so this reaches only what cmd started.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		return fmt.Errorf("%s exited, but a process it started kept its output open; that process was killed", cmd.Path)
	}
	return err
}

func joinNotes(name1 string, w1 *CappedWriter, name2 string, w2 *CappedWriter) string {
	var notes []string
	if n := w1.Note(); n != "" {
		notes = append(notes, name1+": "+n)
	}
	if n := w2.Note(); n != "" {
		notes = append(notes, name2+": "+n)
	}
	return strings.Join(notes, "; ")
}

// ErrTooLarge is returned by ReadFile for a file over its limit.
var ErrTooLarge = errors.New("file too large")

// ReadFile reads a file of this process's namespace, refusing one larger
// than max bytes before reading it (and reading at most max bytes, should
// it grow meanwhile).
func ReadFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: %w: %d bytes, the limit is %d", path, ErrTooLarge, fi.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: %w: grew past the limit of %d bytes while read", path, ErrTooLarge, max)
	}
	return b, nil
}

// ReadFile reads p, a file of the target, refusing one over MaxOutput.
func (t *Target) ReadFile(p string) ([]byte, error) {
	hp, err := t.HostPath(p)
	if err != nil {
		return nil, err
	}
	return ReadFile(hp, MaxOutput)
}

// HostPath is like Path for a file this process will open, with p's links
// resolved inside Root first (/etc/ssl/certs links into
// /usr/share/ca-certificates, which in a mounted host is not this
// process's). With Root "/" the kernel resolves them alike, and p is
// returned as is.
func (t *Target) HostPath(p string) (string, error) {
	if t.Root == "" || t.Root == "/" {
		return p, nil
	}
	r, err := t.Resolve(p)
	if err != nil {
		return "", err
	}
	if err := r.Err(); err != nil {
		return "", fmt.Errorf("open %s: %w", p, err)
	}
	return t.join(r.Real), nil
}

// FirstLines keeps the first n lines of s, trimmed, joined by sep, and
// "..." when lines were left out (never with n = 1, a one-line summary).
func FirstLines(s string, n int, sep string) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
		if n > 1 {
			lines = append(lines, "...")
		}
	}
	return strings.Join(lines, sep)
}

// FirstLine is the first line of s, trimmed: the one-line summary of a
// command's error output.
func FirstLine(s string) string { return FirstLines(s, 1, "") }
