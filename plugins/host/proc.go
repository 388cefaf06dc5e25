package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

const (
	// killGrace is how long a plugin has to exit by itself after
	// go-plugin closed its connection, before its group is killed.
	killGrace = time.Second
	// reapWait bounds the wait for go-plugin to see the plugin's output
	// end once its whole group is dead: only a process that left the
	// group (setsid) could still hold the output open.
	reapWait = 5 * time.Second
	// stderrLines is how much of a plugin's stderr is kept for the error
	// of a plugin that dies before its handshake.
	stderrLines = 8
	maxLineLen  = 512
)

// proc is one run of a plugin binary: go-plugin's client, the command
// (for its exit status), the tail of its stderr and the gRPC stub.
type proc struct {
	client *plugin.Client
	cmd    *exec.Cmd
	stderr *tail
	probe  *sdk.Client
	// kill sends SIGKILL to the plugin's whole process group, as long as
	// its leader has not been reaped (exec.Cmd's Cancel).
	kill context.CancelFunc
}

// newProc prepares a run of the plugin. The plugin gets its own process
// group: a child it forked that inherited stdout would otherwise keep
// go-plugin reading, and Close waiting, for ever.
func (p *Plugin) newProc() *proc {
	sum, _ := hex.DecodeString(p.SHA256)
	life, kill := context.WithCancel(context.Background())
	cmd := exec.CommandContext(life, p.Path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Later entries win in exec; go-plugin would append the agent's
	// environment after ours, so it is skipped there and put first here.
	// GOMAXPROCS before the configured Env, which may override it, and
	// after the agent's own environment, whose value is the agent's.
	env := append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(PluginMaxProcs))
	cmd.Env = append(append(env, p.h.cfg.Env...), sdk.EnvHostPID+"="+strconv.Itoa(os.Getpid()))
	stderr := &tail{}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.PluginSet(nil),
		Cmd:              cmd,
		SecureConfig:     &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     p.h.cfg.StartTimeout,
		Stderr:           stderr,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "plugin." + p.Name, Output: p.h.cfg.PluginLog, Level: p.h.cfg.PluginLogLevel, JSONFormat: true,
		}),
	})
	return &proc{client: client, cmd: cmd, stderr: stderr, kill: kill}
}

// launch starts the plugin and asks for its Info, under ctx: the
// handshake within the start timeout, Info within the call deadline. On
// failure the process is stopped and the returned proc only tells how it
// ended.
func (p *Plugin) launch(ctx context.Context) (*proc, sdk.Info, error) {
	ctx, cancel := context.WithTimeout(ctx, p.h.cfg.StartTimeout+p.h.cfg.CallTimeout)
	defer cancel()
	pr := p.newProc()
	// go-plugin's start knows no context: killing the group ends it.
	defer context.AfterFunc(ctx, pr.kill)()
	fail := func(err error) (*proc, sdk.Info, error) {
		pr.stop(p.h.cfg.Logger, p.Name)
		return pr, sdk.Info{}, err
	}
	rpc, err := pr.client.Client()
	if err != nil {
		e := p.startError(err)
		pr.stop(p.h.cfg.Logger, p.Name)
		return pr, sdk.Info{}, pr.explain(p.Path, e, ctx.Err(), p.h.cfg.StartTimeout)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		return fail(fmt.Errorf("plugin %s: %w", p.Path, err))
	}
	probe, ok := raw.(*sdk.Client)
	if !ok {
		return fail(fmt.Errorf("plugin %s: dispensed %T, not a probe", p.Path, raw))
	}
	ictx, icancel := context.WithTimeout(ctx, p.h.cfg.CallTimeout)
	defer icancel()
	info, err := probe.Info(ictx)
	if err != nil {
		return fail(fmt.Errorf("plugin %s: Info (call deadline %v): %w", p.Path, p.h.cfg.CallTimeout, err))
	}
	pr.probe = probe
	return pr, info, nil
}

// startError turns go-plugin's start errors into what the user must fix.
func (p *Plugin) startError(err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		return refuse("plugin %s: its sha256 differs from the manifest's %s: the binary was changed or the manifest is stale", p.Path, p.SHA256)
	case strings.HasPrefix(msg, "Unrecognized remote plugin message: "):
		line, _, _ := strings.Cut(strings.TrimPrefix(msg, "Unrecognized remote plugin message: "), "\n")
		if line == "" {
			return errNoHandshake
		}
		return fmt.Errorf("plugin %s wrote %q to stdout before the go-plugin handshake: a plugin must keep stdout for the handshake and log to stderr (sdk.Serve does both)", p.Path, line)
	case strings.Contains(msg, "exited before we could connect"):
		return errNoHandshake
	}
	return fmt.Errorf("plugin %s: %w", p.Path, err)
}

// errNoHandshake is a plugin that closed its stdout without a handshake:
// explain says how it ended.
var errNoHandshake = errors.New("no handshake")

// explain completes a start error once the process is stopped: a plugin
// that died before its handshake is reported with its exit status and the
// last lines of its stderr, a start cut short with the deadline.
func (pr *proc) explain(path string, err, ctxErr error, timeout time.Duration) error {
	exit, last := pr.exit(), pr.stderr.String()
	if last != "" {
		last = "; the last lines of its stderr:\n" + last
	}
	switch {
	case errors.Is(ctxErr, context.DeadlineExceeded), strings.Contains(err.Error(), "timeout while waiting for plugin to start"):
		return fmt.Errorf("plugin %s: no go-plugin handshake within the start timeout (%v) or the caller's deadline%s", path, timeout, last)
	case ctxErr != nil:
		return fmt.Errorf("plugin %s: start cancelled before the go-plugin handshake (%v)%s", path, ctxErr, last)
	case errors.Is(err, errNoHandshake) && exit != "":
		return fmt.Errorf("plugin %s exited before the go-plugin handshake (%s)%s", path, exit, last)
	case errors.Is(err, errNoHandshake):
		return fmt.Errorf("plugin %s closed its stdout before the go-plugin handshake%s", path, last)
	}
	return err
}

// stop ends the process: go-plugin closes the connection and the plugin
// has killGrace to exit by itself; then its whole group gets SIGKILL, which
// also ends go-plugin's wait for the output pipes that a grandchild may
// hold. stop returns within killGrace+reapWait whatever happens.
func (pr *proc) stop(log *slog.Logger, name string) {
	done := make(chan struct{})
	go func() {
		pr.client.Kill()
		close(done)
	}()
	select {
	case <-done:
		// The plugin exited by itself and was reaped: exec's Cancel no
		// longer fires, but a child that let go of the output may still
		// run in the group. While any member is left, the kernel keeps
		// the group's id from being reused, so the kill hits only them.
		if pr.cmd.Process != nil {
			syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
		}
		pr.kill()
		return
	case <-time.After(killGrace):
	}
	pr.kill()
	select {
	case <-done:
	case <-time.After(reapWait):
		log.Error("probe plugin: its output is still open after its process group was killed, giving up on it", "plugin", name)
	}
}

// exit is how the process ended ("exit status 2", "signal: killed"), or
// "" if it never ran or is not reaped yet. Read it after stop.
func (pr *proc) exit() string {
	if pr == nil || !pr.client.Exited() || pr.cmd.ProcessState == nil {
		return ""
	}
	return pr.cmd.ProcessState.String()
}

// tail keeps the last stderrLines lines written to it, each cut at
// maxLineLen bytes: enough to say why a plugin died, bounded whatever it
// prints. go-plugin writes one line per Write.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) Write(b []byte) (int, error) {
	line := strings.TrimRight(string(b), "\r\n")
	if line == "" {
		return len(b), nil
	}
	if len(line) > maxLineLen {
		line = line[:maxLineLen] + "…"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > stderrLines {
		t.lines = t.lines[len(t.lines)-stderrLines:]
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return ""
	}
	return "  " + strings.Join(t.lines, "\n  ")
}
