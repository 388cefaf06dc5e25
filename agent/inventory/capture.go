package inventory

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

// Variables are the only variables read from a process's environment:
// the ones the go command (or cgo, or the user's shell) consults in a
// build. The value of any other variable is never copied.
var Variables = []string{
	"GOROOT", "GOPATH", "GOMODCACHE", "GOCACHE", "GOFLAGS", "GOPROXY", "GONOSUMDB",
	"GOPRIVATE", "GOSUMDB", "GOTOOLCHAIN", "GOENV", "GOTMPDIR", "CGO_ENABLED", "CC", "HOME", "PATH",
}

// Env is one environment builds use.
type Env struct {
	// Go is the go binary the process runs, as a path in its own mount
	// namespace.
	Go string `json:"go"`
	// GOROOT is $GOROOT when set, else the directory above Go's bin/.
	GOROOT string `json:"goroot,omitempty"`
	// Version is the first line of GOROOT/VERSION ("go1.26.8"), "" when
	// the root has none.
	Version string `json:"version,omitempty"`
	UID     uint32 `json:"uid"`
	// Vars are the process's values of Variables that are set. URL
	// passwords (a GOPROXY with user:password@) are replaced by ***.
	Vars map[string]string `json:"vars"`
	// Module is the module root of the working directory ("" outside a
	// module).
	Module    string    `json:"module,omitempty"`
	Container Container `json:"container"`
}

// Container says where the process runs.
type Container struct {
	// MountNS is the inode of the process's mount namespace; 0 when it is
	// the host's (that of PID 1).
	MountNS uint64 `json:"mount_ns,omitempty"`
	// Cgroup is the process's cgroup v2 path.
	Cgroup string `json:"cgroup,omitempty"`
	// ID is container.id: the 64-hex container ID in the cgroup path.
	ID string `json:"id,omitempty"`
	// Pod is k8s.pod.uid, from a kubepods cgroup path.
	Pod string `json:"pod,omitempty"`
}

// ID is the environment's stable identity: a digest of everything that
// makes the environment, 12 hex digits. The cgroup path is left out when
// there is no container (a login session's scope is not part of it), and
// the mount namespace when a container ID names the container.
func (e Env) ID() string {
	h := sha256.New()
	field := func(k, v string) {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	field("go", e.Go)
	field("goroot", e.GOROOT)
	field("version", e.Version)
	field("uid", strconv.FormatUint(uint64(e.UID), 10))
	field("module", e.Module)
	for _, k := range slices.Sorted(maps.Keys(e.Vars)) {
		field("var."+k, e.Vars[k])
	}
	field("place", e.Container.key())
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// key names the container: its ID, else its pod, else its mount
// namespace, else "host".
func (c Container) key() string {
	switch {
	case c.ID != "":
		return "container:" + c.ID
	case c.Pod != "":
		return "pod:" + c.Pod
	case c.MountNS != 0:
		return "mntns:" + strconv.FormatUint(c.MountNS, 10)
	}
	return "host"
}

// Place is where an environment is used: its user, container and module.
// A new environment in a known place is a change of the one before.
func (e Env) Place() string {
	return fmt.Sprintf("uid %d, %s, module %q", e.UID, e.Container.key(), e.Module)
}

// FromDoctor says the go command is one of gopatrol's own (a `gopatrol
// check` elsewhere on the node): the doctor gives its go commands a
// GOTMPDIR of their own named gopatrol-gotmp-* (check.Env.GoCommand),
// unique per command, which would make each one a new environment.
func (e Env) FromDoctor() bool {
	return strings.HasPrefix(path.Base(e.Vars["GOTMPDIR"]), "gopatrol-gotmp-")
}

// Environ is the environment as KEY=value pairs, sorted.
func (e Env) Environ() []string {
	out := make([]string, 0, len(e.Vars))
	for _, k := range slices.Sorted(maps.Keys(e.Vars)) {
		out = append(out, k+"="+e.Vars[k])
	}
	return out
}

// Capturer reads environments from a proc filesystem.
type Capturer struct {
	// Proc is the proc filesystem, "/proc" unless a test says otherwise.
	Proc string

	once    sync.Once
	hostNS  uint64
	cgroup2 string // where the cgroup v2 hierarchy is mounted; "" when it is not

	// memo keeps what is the same for every go command of a container
	// for a few seconds: GOROOT's version and a directory's module root.
	// It saves half the system calls of a capture in a busy build.
	mu   sync.Mutex
	memo map[string]memoized
}

type memoized struct {
	val string
	at  time.Time
}

// Memo bounds: how long a value is reused and how many are kept.
const (
	memoTTL  = 10 * time.Second
	memoSize = 4096
)

// remember returns the value of key, computed by f at most once per
// memoTTL.
func (c *Capturer) remember(key string, f func() string) string {
	now := time.Now()
	c.mu.Lock()
	m, ok := c.memo[key]
	c.mu.Unlock()
	if ok && now.Sub(m.at) < memoTTL {
		return m.val
	}
	v := f()
	c.mu.Lock()
	if c.memo == nil || len(c.memo) >= memoSize {
		c.memo = map[string]memoized{}
	}
	c.memo[key] = memoized{v, now}
	c.mu.Unlock()
	return v
}

// forget drops keys from the memo.
func (c *Capturer) forget(keys ...string) {
	c.mu.Lock()
	for _, k := range keys {
		delete(c.memo, k)
	}
	c.mu.Unlock()
}

// maxEnviron bounds what is read of /proc/PID/environ: the kernel's
// limit for the environment of an exec is far above what any build
// needs, and the variables of interest are usually early.
const maxEnviron = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// Exec is what the sensors saw of a go command as it started. A zero
// field was not seen and is read from /proc/PID, which needs the process
// alive; what was seen lets a process that is already gone (a go command
// failing on its flags lives 20 ms) be recorded all the same.
type Exec struct {
	PID, PPID int
	UID       uint32
	// MountNS is the inode of its mount namespace.
	MountNS uint64
	// CgroupID is the inode of its cgroup v2 directory: a parent's cgroup
	// stands for the process's only when the two are the same.
	CgroupID uint64
	// Go is its executable and Cwd its working directory, as paths in its
	// own root.
	Go, Cwd string
	// Environ is its environment as /proc/PID/environ has it; Capture
	// reads only Variables from it and clears it.
	Environ []byte
	// EnvironTruncated says Environ is the start of a longer environment.
	EnvironTruncated bool
}

// Capture reads the environment of live process pid, which runs with uid.
// Reading the environ of another user's process needs root (or
// CAP_SYS_PTRACE); an error says the process could not be read (it may
// have exited already).
func (c *Capturer) Capture(pid int, uid uint32) (Env, error) {
	return c.CaptureExec(Exec{PID: pid, UID: uid})
}

// CaptureExec makes the environment of the go command x. Its files
// (GOROOT's VERSION, the go.mod above its working directory) are read
// through /proc/PID/root of the process, or of its parent while that is
// in the same mount namespace: the only other view of the same files.
func (c *Capturer) CaptureExec(x Exec) (Env, error) {
	defer clear(x.Environ)
	proc := c.Proc
	if proc == "" {
		proc = "/proc"
	}
	c.once.Do(func() {
		c.hostNS, _ = hostMountNS(proc)
		c.cgroup2 = cgroup2Mount(proc)
	})
	var err error
	for _, through := range []int{x.PID, x.PPID} {
		var e Env
		e, err = c.captureThrough(proc, x, through)
		if err == nil || through == x.PPID || x.PPID <= 0 || x.MountNS == 0 {
			return e, err
		}
	}
	return Env{}, err
}

// errGone is a process that exited, or left the mount namespace it was
// seen in, before its environment was read.
var errGone = errors.New("exited before it was read")

// captureThrough makes x's environment, reading its files through the
// root of process through (x.PID or x.PPID).
func (c *Capturer) captureThrough(proc string, x Exec, through int) (Env, error) {
	dir := proc + "/" + strconv.Itoa(through)
	self := through == x.PID
	ns, err := nsInode(dir + "/ns/mnt")
	switch {
	case err != nil && self:
		return Env{}, fmt.Errorf("process %d: %w", x.PID, errGone)
	case err != nil:
		return Env{}, fmt.Errorf("process %d %w, and so did its parent %d", x.PID, errGone, through)
	case x.MountNS != 0 && ns != x.MountNS && self:
		return Env{}, fmt.Errorf("process %d %w: it is in another mount namespace now", x.PID, errGone)
	case x.MountNS != 0 && ns != x.MountNS:
		return Env{}, fmt.Errorf("process %d %w, and its parent %d is in another mount namespace", x.PID, errGone, through)
	}
	e := Env{UID: x.UID, Go: x.Go}
	switch {
	case x.Environ != nil && !x.EnvironTruncated:
		e.Vars = scanVars(x.Environ)
	case self:
		if e.Vars, err = readVars(dir + "/environ"); err != nil {
			return Env{}, fmt.Errorf("environment of process %d: %w", x.PID, err)
		}
	default:
		return Env{}, fmt.Errorf("environment of process %d: longer than the sensors stream, and the process %w", x.PID, errGone)
	}
	if e.Go == "" && self {
		if e.Go, err = os.Readlink(dir + "/exe"); err != nil {
			return Env{}, fmt.Errorf("executable of process %d: %w", x.PID, err)
		}
		e.Go = strings.TrimSuffix(e.Go, " (deleted)")
	}
	cwd := x.Cwd
	if cwd == "" && self {
		cwd, _ = os.Readlink(dir + "/cwd")
	}
	if e.Go == "" || cwd == "" {
		return Env{}, fmt.Errorf("executable or working directory of process %d: not seen at its exec, and the process %w", x.PID, errGone)
	}
	b, err := readSmall(dir + "/cgroup")
	if err != nil {
		return Env{}, fmt.Errorf("cgroup of process %d: %w", through, err)
	}
	e.Container.Cgroup, e.Container.ID, e.Container.Pod = parseCgroup(b)
	if !self && !sameCgroup(c.cgroup2, e.Container.Cgroup, x.CgroupID) {
		return Env{}, fmt.Errorf("cgroup of process %d: it %w, and its parent %d is in another cgroup", x.PID, errGone, through)
	}
	if ns != c.hostNS {
		e.Container.MountNS = ns
	}
	root := dir + "/root"
	nsKey := strconv.FormatUint(ns, 10)
	e.GOROOT = e.Vars["GOROOT"]
	if e.GOROOT == "" && path.Base(path.Dir(e.Go)) == "bin" {
		e.GOROOT = path.Dir(path.Dir(e.Go))
	}
	var keys []string
	if e.GOROOT != "" {
		keys = append(keys, "v"+nsKey+e.GOROOT)
		e.Version = c.remember(keys[0], func() string { return versionFile(root + e.GOROOT + "/VERSION") })
	}
	keys = append(keys, "m"+nsKey+cwd)
	e.Module = c.remember(keys[len(keys)-1], func() string { return moduleRoot(root, cwd) })
	// Files read through a process that died meanwhile read as missing:
	// neither they nor the memo may stand.
	if now, err := nsInode(dir + "/ns/mnt"); err != nil || now != ns {
		c.forget(keys...)
		return Env{}, fmt.Errorf("process %d %w: it exited while its files were read", through, errGone)
	}
	return e, nil
}

// sameCgroup says the cgroup v2 path cg (as /proc/PID/cgroup has it) is
// the directory of inode id under mnt, the cgroup2 mount.
func sameCgroup(mnt, cg string, id uint64) bool {
	var st syscall.Stat_t
	return mnt != "" && id != 0 && syscall.Stat(path.Join(mnt, cg), &st) == nil && st.Ino == id
}

// cgroup2Mount is the mount point of the cgroup v2 hierarchy in this
// process's mountinfo: /sys/fs/cgroup, or /sys/fs/cgroup/unified on a
// hybrid host; "" when it is not mounted.
func cgroup2Mount(proc string) string {
	ms, _ := check.ReadMountinfo(proc + "/self/mountinfo")
	for _, m := range ms {
		if m.FSType == "cgroup2" {
			return m.Point
		}
	}
	return ""
}

// readVars reads a process's environ for Variables only. The buffer
// is cleared before it goes back to the pool, so no other variable's
// value outlives the scan.
func readVars(file string) (map[string]string, error) {
	bp := bufPool.Get().(*[]byte)
	buf, err := readFile(file, (*bp)[:0], maxEnviron)
	defer func() {
		clear(buf[:cap(buf)])
		*bp = buf[:0]
		bufPool.Put(bp)
	}()
	if err != nil {
		return nil, err
	}
	return scanVars(buf), nil
}

// scanVars scans a NUL-separated environ for Variables only.
func scanVars(buf []byte) map[string]string {
	vars := map[string]string{}
	for kv := range bytes.SplitSeq(buf, []byte{0}) {
		k, v, ok := bytes.Cut(kv, []byte{'='})
		if !ok || len(k) < 2 {
			continue
		}
		for _, name := range Variables {
			if string(k) == name { // no allocation: compared, not converted
				val := string(v)
				if bytes.IndexByte(v, '@') >= 0 {
					val = check.RedactURLs(val)
				}
				vars[name] = val
				break
			}
		}
	}
	return vars
}

// readFile appends up to limit bytes of file to buf. Plain system calls:
// os.Open would also try to register each proc file with the poller,
// which doubles the cost of a capture.
func readFile(file string, buf []byte, limit int) ([]byte, error) {
	fd, err := syscall.Open(file, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return buf, &os.PathError{Op: "open", Path: file, Err: err}
	}
	defer syscall.Close(fd)
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(cap(buf), 4096))
		}
		n, err := syscall.Read(fd, buf[len(buf):min(cap(buf), limit)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return buf, &os.PathError{Op: "read", Path: file, Err: err}
		}
		want := min(cap(buf), limit) - len(buf)
		buf = buf[:len(buf)+n]
		if n < want {
			// A short read of a proc file is its end: environ and the
			// seq files give all they have in one read that fits.
			break
		}
	}
	return buf, nil
}

// readSmall reads a file of a few KiB.
func readSmall(file string) ([]byte, error) {
	return readFile(file, make([]byte, 0, 4096), 4096)
}

func versionFile(file string) string {
	b, err := readSmall(file)
	if err != nil {
		return ""
	}
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	v := string(bytes.TrimSpace(line))
	if !strings.HasPrefix(v, "go") {
		return ""
	}
	return v
}

// maxDepth bounds the walk up to a go.mod.
const maxDepth = 32

// moduleRoot is the nearest directory at or above cwd (a path in the
// process's namespace) holding a go.mod, looked up through root.
func moduleRoot(root, cwd string) string {
	if !path.IsAbs(cwd) {
		return ""
	}
	d := path.Clean(cwd)
	for range maxDepth {
		var st syscall.Stat_t
		if syscall.Stat(root+d+"/go.mod", &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFREG {
			return d
		}
		if d == "/" {
			return ""
		}
		d = path.Dir(d)
	}
	return ""
}

// hostMountNS is the host's mount namespace: PID 1's, or this process's
// when PID 1's cannot be read (a sandbox whose init hides it).
func hostMountNS(proc string) (uint64, error) {
	if ns, err := nsInode(proc + "/1/ns/mnt"); err == nil {
		return ns, nil
	}
	return nsInode(proc + "/self/ns/mnt")
}

// nsInode reads a namespace link such as "mnt:[4026531841]".
func nsInode(link string) (uint64, error) {
	s, err := os.Readlink(link)
	if err != nil {
		return 0, err
	}
	i, j := strings.IndexByte(s, '['), strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return 0, fmt.Errorf("%s: %q is not a namespace", link, s)
	}
	return strconv.ParseUint(s[i+1:j], 10, 64)
}

// parseCgroup reads the cgroup v2 line ("0::/path") of /proc/PID/cgroup
// and finds a container ID (the last 64-hex word: docker-<id>.scope,
// cri-containerd-<id>.scope, /docker/<id>) and a kubepods pod UID in it.
func parseCgroup(b []byte) (cg, id, pod string) {
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		if p, ok := bytes.CutPrefix(line, []byte("0::")); ok {
			cg = string(p)
		}
	}
	for _, el := range strings.Split(cg, "/") {
		el = strings.TrimSuffix(el, ".scope")
		if i := strings.LastIndexAny(el, "-:"); i >= 0 && isHex64(el[i+1:]) {
			el = el[i+1:]
		}
		if isHex64(el) {
			id = el
		}
		if strings.Contains(el, "pod") {
			u := el[strings.LastIndex(el, "pod")+3:]
			u = strings.TrimSuffix(u, ".slice")
			if len(u) == 36 {
				pod = strings.ReplaceAll(u, "_", "-")
			}
		}
	}
	return cg, id, pod
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
