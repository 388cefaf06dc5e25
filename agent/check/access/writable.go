package access

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gopatrol/gopatrol/agent/check"
)

// Error is a failed probe: what was attempted, where, as whom, and the
// errno the kernel returned (EACCES, EROFS, ENOSPC, EDQUOT...).
type Error struct {
	Op   string // "create a file", "write", "create a directory", "run a binary"...
	Path string // in the target's namespace
	User string
	Err  error
	// Blocked is the first directory on the way to Path that User may not
	// search (no x permission for that user), when that, and not Path
	// itself, is why the kernel said EACCES. Handing Path to the user
	// would change nothing then.
	Blocked string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("cannot %s in %s as user %s: %v", e.Op, e.Path, e.User, e.Err)
	if name := e.Errno(); name != "" {
		msg += " (" + name + ")"
	}
	if e.Blocked != "" {
		msg += fmt.Sprintf(": user %s cannot search %s, a directory on the way", e.User, e.Blocked)
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errno is the symbolic name of the kernel's error, e.g. "EACCES", or ""
// when the failure was not a system call error.
func (e *Error) Errno() string {
	var errno unix.Errno
	if errors.As(e.Err, &errno) {
		return unix.ErrnoName(errno)
	}
	return ""
}

// Writable creates a uniquely named file in dir (a path of the target),
// writes to it and removes it, then creates and removes a subdirectory (the
// go command makes directories in its caches), all as the target's build
// user. The error names the path, the user and the errno.
func Writable(ctx context.Context, t *check.Target, dir string) error {
	return asUser(ctx, t, func(hostDir string) error {
		return writeProbe(t, dir, hostDir)
	}, dir)
}

func writeProbe(t *check.Target, dir, hostDir string) error {
	fail := func(op, path string, err error) error {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &Error{Op: op, Path: path, User: t.UserName(), Err: err}
	}
	f, err := os.CreateTemp(hostDir, ".gopatrol-probe-*")
	if err != nil {
		e := fail("create a file", dir, err).(*Error)
		if errors.Is(err, fs.ErrPermission) {
			e.Blocked = unsearchable(t, dir)
		}
		return e
	}
	name := filepath.Join(dir, filepath.Base(f.Name()))
	_, werr := f.Write([]byte("gopatrol probe\n"))
	cerr := f.Close() // quota and NFS errors may surface only at close
	rerr := os.Remove(f.Name())
	switch {
	case werr != nil:
		return fail("write", name, werr)
	case cerr != nil:
		return fail("write", name, cerr)
	case rerr != nil:
		return fail("remove a file", name, rerr)
	}
	sub, err := os.MkdirTemp(hostDir, ".gopatrol-probe-*")
	if err != nil {
		return fail("create a directory", dir, err)
	}
	if err := os.Remove(sub); err != nil {
		return fail("remove a directory", filepath.Join(dir, filepath.Base(sub)), err)
	}
	return nil
}

// unsearchable returns the first directory on the way to dir (a path of
// the target) that the calling thread's user may not search, or "" when
// every one of them can be passed. It walks from the root down and lstats
// each next component: EACCES there means its parent refused the search.
// It runs as the probing user, so the kernel answers for that user, ACLs
// and all.
func unsearchable(t *check.Target, dir string) string {
	dir = filepath.Clean(dir)
	if !filepath.IsAbs(dir) {
		return ""
	}
	parent := "/"
	for _, name := range strings.Split(strings.TrimPrefix(dir, "/"), "/") {
		if name == "" {
			continue
		}
		next := filepath.Join(parent, name)
		if _, err := os.Lstat(t.Path(next)); err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return parent
			}
			return "" // gone or not a directory: not a permission matter
		}
		parent = next
	}
	return ""
}

// asUser runs fn on hostDir with the build user's filesystem credentials
// and waits for it or for ctx.
func asUser(ctx context.Context, t *check.Target, fn func(hostDir string) error, dir string) error {
	hostDir := t.Path(dir)
	if !t.AsOther() {
		// Still on a goroutine: a hung filesystem must not hold the
		// check past its deadline.
		return wait(ctx, dir, func() error { return fn(hostDir) })
	}
	u := t.User
	return wait(ctx, dir, func() error {
		runtime.LockOSThread()
		saved, err := threadIdentity()
		if err != nil {
			runtime.UnlockOSThread()
			return fmt.Errorf("probe as user %s: %w", u.Name, err)
		}
		// The thread goes back to the runtime only with its own identity
		// restored and checked. Otherwise it stays locked and the runtime
		// ends it with this goroutine; that is the exception, because
		// ending a thread SIGKILLs every child it ever started with
		// Pdeathsig (golang/go#27505): another check's `go` command,
		// forked earlier on this thread, would die with it.
		defer func() {
			if restoreThread(saved) == nil {
				runtime.UnlockOSThread()
			}
		}()
		if err := switchThread(u); err != nil {
			return err
		}
		return fn(hostDir)
	})
}

// identity is a thread's filesystem identity: fsuid, fsgid and groups.
type identity struct {
	uid, gid uint32
	groups   []uint32
}

// threadIdentity reads the calling thread's identity (setfs[ug]id with -1
// change nothing and return the current value).
func threadIdentity() (identity, error) {
	uid, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0)
	gid, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, ^uintptr(0), 0, 0)
	id := identity{uid: uint32(uid), gid: uint32(gid)}
	n, _, e := unix.RawSyscall(unix.SYS_GETGROUPS, 0, 0, 0)
	if e != 0 {
		return id, fmt.Errorf("getgroups: %w", e)
	}
	if n > 0 {
		id.groups = make([]uint32, n)
		if m, _, e := unix.RawSyscall(unix.SYS_GETGROUPS, n, uintptr(unsafe.Pointer(&id.groups[0])), 0); e != 0 || m != n {
			return id, fmt.Errorf("getgroups: %v (%d of %d)", e, m, n)
		}
	}
	return id, nil
}

// restoreThread puts saved back on the calling thread and checks it.
// fsuid first back to root, so that the capabilities a non-zero fsuid
// dropped from the effective set (setgroups needs none of them, but the
// runtime's next goroutine on this thread may) come back with it.
func restoreThread(saved identity) error {
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(saved.uid), 0, 0)
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(saved.gid), 0, 0)
	var p unsafe.Pointer
	if len(saved.groups) > 0 {
		p = unsafe.Pointer(&saved.groups[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(saved.groups)), uintptr(p), 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	now, err := threadIdentity()
	if err != nil {
		return err
	}
	if now.uid != saved.uid || now.gid != saved.gid || !slices.Equal(now.groups, saved.groups) {
		return fmt.Errorf("identity not restored: %+v, want %+v", now, saved)
	}
	return nil
}

// wait runs fn on its own goroutine. On ctx's end it returns at once; fn
// keeps running and removes what it created when its system call returns.
func wait(ctx context.Context, dir string, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("probe of %s: %w (the filesystem did not answer)", dir, ctx.Err())
	}
}

// switchThread gives the calling thread u's filesystem identity. The raw
// system calls act on this thread only; Go's syscall.Setgroups and friends
// would change every thread of the process.
func switchThread(u *check.User) error {
	groups := u.Groups
	if len(groups) == 0 {
		groups = []uint32{u.GID}
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(unsafe.Pointer(&groups[0])), 0); e != 0 {
		return fmt.Errorf("probe as user %s: setgroups: %w (probing as another user needs root)", u.Name, e)
	}
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(u.GID), 0, 0)
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(u.UID), 0, 0)
	// setfs[ug]id report no errors; asking with -1 returns the current
	// value without changing it.
	gid, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, ^uintptr(0), 0, 0)
	uid, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0)
	if uint32(uid) != u.UID || uint32(gid) != u.GID {
		return fmt.Errorf("probe as user %s: cannot switch to uid %d gid %d (probing as another user needs root)", u.Name, u.UID, u.GID)
	}
	return nil
}
