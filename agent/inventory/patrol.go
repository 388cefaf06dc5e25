package inventory

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

// Outcomes of a patrol: the worst status of its checks, or unreachable.
const (
	OutcomePass        = "pass"
	OutcomeWarn        = "warn"
	OutcomeFail        = "fail"
	OutcomeError       = "error"
	OutcomeUnreachable = "unreachable"
)

// Result is one patrol of one environment.
type Result struct {
	At       time.Time     `json:"at"`
	Duration time.Duration `json:"duration_ns"`
	// Outcome is pass, warn, fail, error (a check could not run, or the
	// toolchain could not be resolved) or unreachable (the environment
	// could not be entered: no process left in its container).
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	// Root is where the environment was entered (/proc/PID/root, or /).
	Root    string               `json:"root,omitempty"`
	Summary map[check.Status]int `json:"summary,omitempty"`
	// Problems are the checks that did not pass or skip.
	Problems []Problem `json:"problems,omitempty"`
}

// Problem is a check that did not pass.
type Problem struct {
	ID      string       `json:"id"`
	Status  check.Status `json:"status"`
	Summary string       `json:"summary"`
}

// Healthy says every check that ran passed or skipped.
func (r Result) Healthy() bool { return r.Outcome == OutcomePass }

// ErrUnreachable is the error of an environment that cannot be entered.
var ErrUnreachable = errors.New("environment cannot be entered")

// Patroller runs the doctor against environments.
type Patroller struct {
	// Proc is the proc filesystem ("/proc").
	Proc string
	// Checks are the checks of a patrol (the doctor's default set).
	Checks []check.Check
	// Runner runs them.
	Runner check.Runner
	// MaxScan bounds the processes looked at to find one in an
	// environment's mount namespace (0: 65536).
	MaxScan int
	// Nice is the niceness of the checks' commands and all they start
	// (check.Target.Nice; 0: the caller's).
	Nice int
	// Idle runs them under SCHED_IDLE too (check.Target.Idle).
	Idle bool
}

func (p Patroller) proc() string {
	if p.Proc == "" {
		return "/proc"
	}
	return p.Proc
}

// Enter finds a live process of e's container and returns the doctor's
// target for it: its root filesystem, e's user, variables and module.
// The error wraps ErrUnreachable when no process is left to enter by.
func (p Patroller) Enter(e Entry) (*check.Target, int, error) {
	pid, err := p.live(e)
	if err != nil {
		return nil, 0, err
	}
	root := "/"
	self, _ := nsInode(p.proc() + "/self/ns/mnt")
	if ns, _ := nsInode(p.proc() + "/" + strconv.Itoa(pid) + "/ns/mnt"); ns != self {
		root = p.proc() + "/" + strconv.Itoa(pid) + "/root"
	}
	t := Target(e.Env, root)
	t.Nice, t.Idle = p.Nice, p.Idle
	return t, pid, nil
}

// Target is the doctor's target for env inside root: env's variables and
// module, env's user as root's /etc/passwd knows it (else by number).
func Target(env Env, root string) *check.Target {
	t := &check.Target{Root: root, Dir: "/", Environ: env.Environ()}
	if env.Module != "" {
		if fi, err := os.Stat(t.Path(env.Module)); err == nil && fi.IsDir() {
			t.Dir = env.Module
		}
	}
	uid := strconv.FormatUint(uint64(env.UID), 10)
	u, err := t.LookupUser(uid)
	if err != nil {
		u = &check.User{Name: uid, UID: env.UID, GID: env.UID, Groups: []uint32{env.UID}}
	}
	if h, ok := env.Vars["HOME"]; ok {
		// The build's own HOME, not the passwd one: it is what its go
		// command used.
		u.Home = h
	}
	t.User = u
	return t
}

// live is a process still in e's mount namespace: one of its last go
// commands, else any process of the namespace.
func (p Patroller) live(e Entry) (int, error) {
	want := e.Env.Container.MountNS
	if want == 0 {
		host, err := hostMountNS(p.proc())
		if err != nil {
			return 0, fmt.Errorf("%w: the host's mount namespace: %v", ErrUnreachable, err)
		}
		want = host
	}
	in := func(pid int) bool {
		ns, err := nsInode(p.proc() + "/" + strconv.Itoa(pid) + "/ns/mnt")
		return err == nil && ns == want
	}
	for _, pid := range e.PIDs {
		if in(pid) {
			return pid, nil
		}
	}
	d, err := os.Open(p.proc())
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	defer d.Close()
	limit := p.MaxScan
	if limit <= 0 {
		limit = 1 << 16
	}
	names, _ := d.Readdirnames(limit)
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err == nil && in(pid) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("%w: no process left in its mount namespace %d (the process or its container is gone)", ErrUnreachable, want)
}

// Patrol enters e and runs the checks there, as e's user with e's
// variables. The report is nil when it could not be entered. A process
// that ends while the checks run (often the go command itself) takes its
// root with it: the patrol is then run again through another process of
// the namespace, once.
func (p Patroller) Patrol(ctx context.Context, e Entry) (Result, *check.Report) {
	start := time.Now()
	var r Result
	var rep *check.Report
	for range 2 {
		var dead int
		r, rep, dead = p.patrolOnce(ctx, e)
		if dead == 0 {
			break
		}
		e.PIDs = slices.DeleteFunc(slices.Clone(e.PIDs), func(pid int) bool { return pid == dead })
	}
	r.At, r.Duration = start.UTC(), time.Since(start)
	return r, rep
}

// patrolOnce is one attempt; dead is the process it entered by when that
// ended during the checks (the result is then not the environment's).
func (p Patroller) patrolOnce(ctx context.Context, e Entry) (r Result, rep *check.Report, dead int) {
	t, pid, err := p.Enter(e)
	if err != nil {
		r.Outcome, r.Reason = OutcomeUnreachable, err.Error()
		return r, nil, 0
	}
	r.Root = t.Root
	if why := jobGone(e, t, pid); why != "" {
		r.Outcome, r.Reason = OutcomeUnreachable, why
		return r, nil, 0
	}
	tc, err := check.ResolveToolchain(ctx, t, e.Env.Go)
	if err == nil {
		results := p.Runner.Run(ctx, &check.Env{Target: t, Toolchain: tc}, p.Checks)
		rp := check.NewReport(tc, results)
		rep = &rp
	}
	if !p.alive(pid, t.Root) {
		r.Outcome, r.Reason = OutcomeUnreachable, fmt.Sprintf("process %d, the way in, ended while the checks ran", pid)
		return r, nil, pid
	}
	if err != nil {
		r.Outcome, r.Reason = OutcomeError, fmt.Sprintf("toolchain %s: %v", e.Env.Go, err)
		return r, nil, 0
	}
	r.Summary = rep.Summary
	r.Outcome = OutcomePass
	for _, res := range rep.Results {
		switch res.Status {
		case check.Pass, check.Skip:
			continue
		}
		r.Problems = append(r.Problems, Problem{ID: res.ID, Status: res.Status, Summary: res.Summary})
		if rank(res.Status) > rank(check.Status(r.Outcome)) {
			r.Outcome = string(res.Status)
		}
	}
	if tc.Err != nil {
		r.Outcome, r.Reason = OutcomeFail, "no working toolchain: "+tc.Err.Error()
	}
	return r, rep, 0
}

// jobGone says why e, entered by pid, is an environment nobody can use
// any more, or "". A host environment outlives its processes, and a CI
// job's often lived in temporary directories: once its go commands have
// ended (pid is none of them) and the directory holding its GOCACHE or
// GOMODCACHE has been removed, its builds are over. A patrol would only
// re-create the job's cache and compile the standard library into it,
// every cycle. A cache that is missing while its directory stays is
// still patrolled: that is a cache its user could not create.
func jobGone(e Entry, t *check.Target, pid int) string {
	if slices.Contains(e.PIDs, pid) {
		return "" // one of its own go commands still runs
	}
	for _, key := range []string{"GOCACHE", "GOMODCACHE"} {
		v := e.Env.Vars[key]
		if !filepath.IsAbs(v) {
			continue // unset, "off" or relative: the doctor's to judge
		}
		parent := filepath.Dir(filepath.Clean(v))
		if _, err := os.Lstat(t.Path(parent)); errors.Is(err, fs.ErrNotExist) {
			return fmt.Sprintf("its go commands have ended and %s's directory %s is gone (a finished job's temporary directory?): not patrolled, so as not to re-create its cache", key, parent)
		}
	}
	return ""
}

// alive says process pid still lives and its root can be entered.
func (p Patroller) alive(pid int, root string) bool {
	if root == "/" {
		return true // the host's root outlives any of its processes
	}
	_, err := os.Stat(root + "/")
	return err == nil
}

func rank(s check.Status) int {
	switch s {
	case check.Warn:
		return 1
	case check.Error:
		return 2
	case check.Fail:
		return 3
	}
	return 0
}
