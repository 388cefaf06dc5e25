package check

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Target is the machine under test: where its filesystem is, which
// environment its builds see, and as whom they run. The doctor inspects the
// local machine (Root "/"); the agent in a DaemonSet inspects the node
// mounted at /host, and commands then run chrooted there.
type Target struct {
	// Root is the machine's filesystem root as seen from this process.
	Root string
	// Dir is the working directory of commands, in the target's namespace
	// (the -C flag).
	Dir string
	// User is the user who builds. Probes of writability and
	// executability run as this user, because root bypasses mode bits.
	User *User
	// Environ is the environment builds see, "KEY=value" pairs.
	Environ []string
	// Nice is the niceness its commands start with, inherited by all
	// they start (0: this process's). The agent patrols the environments
	// builds use at 19, so that the builds beside keep their speed.
	Nice int
	// Idle starts its commands under the SCHED_IDLE policy, also
	// inherited: they run only on a CPU that nothing else wants, and
	// their I/O is of the idle class.
	Idle bool
}

// User is an account of the target, read from its /etc/passwd and
// /etc/group, so that a host mounted at /host answers for its own users.
type User struct {
	Name   string
	UID    uint32
	GID    uint32
	Groups []uint32 // supplementary groups, including GID
	Home   string
}

// LocalTarget is this machine as the invoking user sees it.
func LocalTarget() (*Target, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("working directory: %w", err)
	}
	t := &Target{Root: "/", Dir: dir, Environ: os.Environ()}
	u, err := t.LookupUser(strconv.Itoa(os.Getuid()))
	if err != nil {
		// Containers often run as a uid with no passwd entry.
		u = &User{Name: strconv.Itoa(os.Getuid()), UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Home: os.Getenv("HOME")}
		if gs, err := os.Getgroups(); err == nil {
			for _, g := range gs {
				u.Groups = append(u.Groups, uint32(g))
			}
		}
	}
	t.User = u
	return t, nil
}

// Getenv returns the value of key in the target's environment.
func (t *Target) Getenv(key string) string {
	v, _ := t.LookupEnv(key)
	return v
}

// LookupEnv is like os.LookupEnv for the target's environment; the last
// assignment wins, as in exec.Cmd.
func (t *Target) LookupEnv(key string) (string, bool) {
	for _, kv := range slices.Backward(t.Environ) {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// WithEnv returns a copy of t whose environment has the given assignments
// added (they override earlier ones).
func (t *Target) WithEnv(kv ...string) *Target {
	c := *t
	c.Environ = append(slices.Clone(t.Environ), kv...)
	return &c
}

// AsOther reports whether commands run as a user other than this process.
func (t *Target) AsOther() bool {
	return t.User != nil && t.User.UID != uint32(os.Geteuid())
}

// Command prepares name to run on the target: in its environment and
// directory, chrooted into Root, as the build user. The process runs in its
// own process group which is killed when ctx ends, so a probe that times
// out leaves nothing behind.
func (t *Target) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = slices.Clone(t.Environ)
	cmd.Dir = t.Dir
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if t.Root != "" && t.Root != "/" {
		attr.Chroot = t.Root
	}
	if t.AsOther() {
		attr.Credential = &syscall.Credential{Uid: t.User.UID, Gid: t.User.GID, Groups: t.User.Groups}
		// Like su: the build user's own HOME and name, everything else kept.
		cmd.Env = append(cmd.Env, "HOME="+t.User.Home, "USER="+t.User.Name, "LOGNAME="+t.User.Name)
	}
	cmd.SysProcAttr = attr
	if t.Nice > 0 || t.Idle {
		niced.Store(cmd, priority{nice: t.Nice, idle: t.Idle})
	}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// LookPath returns every file named name in the target's PATH that the
// build user could execute, in PATH order, like `which -a`.
func (t *Target) LookPath(name string) []string {
	var found []string
	seen := map[string]bool{}
	for _, dir := range filepath.SplitList(t.Getenv("PATH")) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue // relative PATH entries depend on the cwd; go.binary reports them
		}
		p := filepath.Join(dir, name)
		if seen[p] {
			continue
		}
		fi, err := os.Stat(t.Path(p))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			continue
		}
		seen[p] = true
		found = append(found, p)
	}
	return found
}

// UserName names the build user for messages: its name, else the uid
// this process runs as.
func (t *Target) UserName() string {
	if t.User == nil {
		return strconv.Itoa(os.Geteuid())
	}
	return t.User.Name
}

// ReadHead reads at most n bytes from the start of p, a file of the
// target, for telling a script from a binary.
func (t *Target) ReadHead(p string, n int) ([]byte, error) {
	hp, err := t.HostPath(p)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(hp)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := io.ReadFull(f, b)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = nil
	}
	return b[:k], err
}

// ErrUnknownUser is returned by LookupUser for a name the target lacks.
var ErrUnknownUser = errors.New("unknown user")

// LookupUser finds a user of the target by name or numeric uid, with the
// supplementary groups listed in the target's /etc/group.
func (t *Target) LookupUser(nameOrUID string) (*User, error) {
	f, err := os.Open(t.Path("/etc/passwd"))
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	defer f.Close()
	var u *User
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// name:x:uid:gid:gecos:home:shell
		fs := strings.Split(sc.Text(), ":")
		if len(fs) < 7 || (fs[0] != nameOrUID && fs[2] != nameOrUID) {
			continue
		}
		uid, err1 := strconv.ParseUint(fs[2], 10, 32)
		gid, err2 := strconv.ParseUint(fs[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		u = &User{Name: fs[0], UID: uint32(uid), GID: uint32(gid), Home: fs[5]}
		break
	}
	if u == nil {
		return nil, fmt.Errorf("%w %q in %s", ErrUnknownUser, nameOrUID, t.Path("/etc/passwd"))
	}
	u.Groups = []uint32{u.GID}
	if gf, err := os.Open(t.Path("/etc/group")); err == nil {
		defer gf.Close()
		sc := bufio.NewScanner(gf)
		for sc.Scan() {
			// name:x:gid:member,member
			fs := strings.Split(sc.Text(), ":")
			if len(fs) < 4 {
				continue
			}
			gid, err := strconv.ParseUint(fs[2], 10, 32)
			if err != nil || uint32(gid) == u.GID {
				continue
			}
			if slices.Contains(strings.Split(fs[3], ","), u.Name) {
				u.Groups = append(u.Groups, uint32(gid))
			}
		}
	}
	return u, nil
}

// NearestExisting returns p, or its closest ancestor that exists on the
// target: the go command creates missing cache and GOBIN directories, so
// that is where the build user must be able to write.
func (t *Target) NearestExisting(p string) string {
	for {
		if _, err := os.Stat(t.Path(p)); err == nil {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}
