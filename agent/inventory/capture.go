package inventory

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
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

	once   sync.Once
	hostNS uint64

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

// maxEnviron bounds what is read of /proc/PID/environ: the kernel's
// limit for the environment of an exec is far above what any build
// needs, and the variables of interest are usually early.
const maxEnviron = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// Capture reads the environment of process pid, which runs with uid.
// Reading the environ of another user's process needs root (or
// CAP_SYS_PTRACE); an error says the process could not be read (it may
// have exited already).
func (c *Capturer) Capture(pid int, uid uint32) (Env, error) {
	proc := c.Proc
	if proc == "" {
		proc = "/proc"
	}
	c.once.Do(func() { c.hostNS, _ = hostMountNS(proc) })
	dir := proc + "/" + strconv.Itoa(pid)
	e := Env{UID: uid}
	var err error
	if e.Vars, err = readVars(dir + "/environ"); err != nil {
		return Env{}, fmt.Errorf("environment of process %d: %w", pid, err)
	}
	if e.Go, err = os.Readlink(dir + "/exe"); err != nil {
		return Env{}, fmt.Errorf("executable of process %d: %w", pid, err)
	}
	e.Go = strings.TrimSuffix(e.Go, " (deleted)")
	root := dir + "/root"
	ns, err := nsInode(dir + "/ns/mnt")
	if err != nil {
		return Env{}, fmt.Errorf("mount namespace of process %d: %w", pid, err)
	}
	if ns != c.hostNS {
		e.Container.MountNS = ns
	}
	nsKey := strconv.FormatUint(ns, 10)
	e.GOROOT = e.Vars["GOROOT"]
	if e.GOROOT == "" && path.Base(path.Dir(e.Go)) == "bin" {
		e.GOROOT = path.Dir(path.Dir(e.Go))
	}
	if e.GOROOT != "" {
		e.Version = c.remember("v"+nsKey+e.GOROOT, func() string { return versionFile(root + e.GOROOT + "/VERSION") })
	}
	if cwd, err := os.Readlink(dir + "/cwd"); err == nil {
		e.Module = c.remember("m"+nsKey+cwd, func() string { return moduleRoot(root, cwd) })
	}
	if b, err := readSmall(dir + "/cgroup"); err == nil {
		e.Container.Cgroup, e.Container.ID, e.Container.Pod = parseCgroup(b)
	}
	return e, nil
}

// readVars scans a NUL-separated environ for Variables only. The buffer
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
	return vars, nil
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
