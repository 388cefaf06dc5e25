package buildtrace

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
)

// Cgroups resolves a cgroup ID (the inode of its directory in cgroup v2,
// as bpf_get_current_cgroup_id reports) to its path, and the path to the
// container and pod it names. Paths are found by walking the cgroup
// filesystem once per unknown ID, and remembered.
type Cgroups struct {
	root string
	mu   sync.Mutex
	seen map[uint64]string
}

// DefaultCgroupRoot is where cgroup v2 is mounted on a unified host;
// a hybrid host (cgroup v1 controllers) mounts it at its unified/.
const DefaultCgroupRoot = "/sys/fs/cgroup"

// CgroupRoot is the cgroup v2 mount: DefaultCgroupRoot, or its unified/
// on a hybrid host.
func CgroupRoot() string {
	if _, err := os.Stat(filepath.Join(DefaultCgroupRoot, "cgroup.controllers")); err == nil {
		return DefaultCgroupRoot
	}
	if _, err := os.Stat(filepath.Join(DefaultCgroupRoot, "unified", "cgroup.controllers")); err == nil {
		return filepath.Join(DefaultCgroupRoot, "unified")
	}
	return DefaultCgroupRoot
}

// maxCgroupCache bounds the remembered IDs; past it the cache restarts.
const maxCgroupCache = 4096

// NewCgroups resolves under root (CgroupRoot() when empty).
func NewCgroups(root string) *Cgroups {
	if root == "" {
		root = CgroupRoot()
	}
	return &Cgroups{root: root, seen: map[uint64]string{}}
}

// Path is the cgroup path of id relative to the root ("/" for the root
// itself), "" when it is not found.
func (c *Cgroups) Path(id uint64) string {
	if id == 0 {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.seen[id]; ok {
		return p
	}
	if len(c.seen) >= maxCgroupCache {
		c.seen = map[uint64]string{}
	}
	found := ""
	filepath.WalkDir(c.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Ino == id {
			rel, _ := filepath.Rel(c.root, path)
			found = "/" + strings.TrimPrefix(rel, ".")
			return filepath.SkipAll
		}
		return nil
	})
	c.seen[id] = found
	return found
}

// Identity is the container ID and pod UID the cgroup of id names.
func (c *Cgroups) Identity(id uint64) (containerID, podUID string) {
	return IdentityOf(c.Path(id))
}

var (
	containerRE = regexp.MustCompile(`(?:^|[/-])([0-9a-f]{64})(?:\.scope)?$`)
	podRE       = regexp.MustCompile(`pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})`)
)

// IdentityOf reads a cgroup path the way container runtimes write them:
// the container ID is the last element's 64 hex digits (docker-<id>.scope,
// cri-containerd-<id>.scope, crio-<id>.scope, /docker/<id>), the pod UID
// the kubepods element's pod<uid> (systemd drivers write _ for -).
func IdentityOf(path string) (containerID, podUID string) {
	if m := containerRE.FindStringSubmatch(path); m != nil {
		containerID = m[1]
	}
	if m := podRE.FindStringSubmatch(path); m != nil {
		podUID = strings.ReplaceAll(m[1], "_", "-")
	}
	return containerID, podUID
}
