package seclabel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/selinux/go-selinux"
	"golang.org/x/sys/unix"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// setLabel writes the security.selinux xattr as restorecon would. Without
// an SELinux LSM the kernel still stores security.* xattrs on tmpfs and
// ext4 (root only), which is what a host that later enforces would see.
func setLabel(t *testing.T, path, label string) {
	t.Helper()
	if err := unix.Lsetxattr(path, "security.selinux", []byte(label+"\x00"), 0); err != nil {
		testgate.Missing(t, "the kernel refuses security.selinux on %s: %v", path, err)
	}
}

// flagged is the status a denied label must give on this machine.
func flagged() check.Status {
	if selinux.GetEnabled() && selinux.EnforceMode() == selinux.Enforcing {
		return check.Fail
	}
	return check.Warn
}

func TestTmpfsCacheLabelledTmpfsT(t *testing.T) {
	checktest.RequireRoot(t)
	w := checktest.New(t)
	shm := checktest.MountTmpfs(t, filepath.Join(w.Dir, "shm"), "size=8m,mode=1777")
	gocache := filepath.Join(shm, "go-cache")
	if err := os.Mkdir(gocache, 0o777); err != nil {
		t.Fatal(err)
	}
	setLabel(t, gocache, "system_u:object_r:tmpfs_t:s0")
	w.Setenv("GOCACHE=" + gocache)

	c := checktest.Find(t, Checks(), "gocache.selinux")
	res := w.Run(c)
	if res.Status != flagged() {
		t.Fatalf("status %s, want %s", res.Status, flagged())
	}
	if res.Evidence["GOCACHE"] != gocache || res.Evidence["GOCACHE.label"] != "system_u:object_r:tmpfs_t:s0" {
		t.Errorf("evidence %v does not name %s and its label", res.Evidence, gocache)
	}
	if !strings.HasPrefix(res.Evidence["GOCACHE.mount"], shm+" type tmpfs") || !strings.HasPrefix(res.Evidence["GOCACHE.tmpfs"], "yes") {
		t.Errorf("evidence %v does not place GOCACHE on the tmpfs at %s", res.Evidence, shm)
	}
	if !strings.Contains(res.Fix, "chcon -R "+containerFile+" "+gocache) || !strings.Contains(res.Fix, "export GOCACHE=") {
		t.Errorf("fix %q does not relabel %s, or does not move GOCACHE where the environment sets it", res.Fix, gocache)
	}
	relabelled(t, w, c, res, gocache)
}

// relabelled applies the printed fix as printed (its chcon) and runs the
// check again: it passes, and dir now carries container_file_t.
func relabelled(t *testing.T, w *checktest.World, c check.Check, res check.Result, dir string) {
	t.Helper()
	if !checktest.FixRerun(t, w, c, res) {
		t.Fatalf("fix %q was not applied", res.Fix)
	}
	if got, err := getLabel(dir); err != nil || labelType(got) != "container_file_t" {
		t.Errorf("after the fix %s is labelled %q (%v), want container_file_t", dir, got, err)
	}
}

func TestCacheLabels(t *testing.T) {
	checktest.RequireRoot(t)
	for _, tc := range []struct {
		name, label string
		want        check.Status
	}{
		{"etc_t is flagged", "system_u:object_r:etc_t:s0", flagged()},
		{"container_file_t is fine", "system_u:object_r:container_file_t:s0:c1,c2", check.Pass},
		{"user home cache is fine", "unconfined_u:object_r:cache_home_t:s0", check.Pass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := checktest.New(t)
			dir := filepath.Join(w.Dir, "cache")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			setLabel(t, dir, tc.label)
			w.Setenv("GOCACHE=" + dir)
			c := checktest.Find(t, Checks(), "gocache.selinux")
			res := w.Run(c)
			if selinux.GetEnabled() && tc.want == check.Pass {
				t.Skip("a real policy decides the other caches' labels here")
			}
			if res.Status != tc.want || res.Evidence["GOCACHE.label"] != tc.label {
				t.Errorf("status %s label %q, want %s and %q", res.Status, res.Evidence["GOCACHE.label"], tc.want, tc.label)
			}
			if tc.want != check.Pass {
				relabelled(t, w, c, res, dir)
			}
		})
	}
}

// A cache directory the go command has not made yet is judged by the
// label of the parent it would inherit from.
func TestMissingCacheUsesParentLabel(t *testing.T) {
	checktest.RequireRoot(t)
	w := checktest.New(t)
	parent := filepath.Join(w.Dir, "shared")
	if err := os.Mkdir(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	setLabel(t, parent, "system_u:object_r:usr_t:s0")
	// GOMODCACHE: `go env` itself creates a missing GOCACHE.
	w.Setenv("GOMODCACHE=" + filepath.Join(parent, "not", "yet"))
	c := checktest.Find(t, Checks(), "gocache.selinux")
	res := w.Run(c)
	if res.Status != flagged() || !strings.HasPrefix(res.Evidence["GOMODCACHE.label_of"], parent) {
		t.Errorf("status %s evidence %v, want %s with the label of %s", res.Status, res.Evidence, flagged(), parent)
	}
	// The fix relabels the parent, which the cache will inherit: a
	// chcon of the cache itself would fail, it does not exist.
	relabelled(t, w, c, res, parent)
}

func TestNoLabelsNoSELinux(t *testing.T) {
	if selinux.GetEnabled() {
		t.Skip("SELinux is enabled here")
	}
	w := checktest.New(t)
	dir := filepath.Join(w.Dir, "cache")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := getLabel(dir); err != nil {
		t.Fatal(err)
	}
	w.Setenv("GOCACHE="+dir, "GOMODCACHE="+filepath.Join(w.Dir, "modcache"))
	res := w.Run(checktest.Find(t, Checks(), "gocache.selinux"))
	if res.Status != check.Skip || res.Evidence["GOCACHE.label"] != "(none)" || res.Evidence["selinux"] != "disabled" {
		t.Errorf("status %s evidence %v, want skip with no label and SELinux disabled", res.Status, res.Evidence)
	}
}

func TestMountinfo(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "mountinfo")
	content := `22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,seclabel
30 22 0:25 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs shm rw,seclabel,size=65536k
31 22 0:26 / /mnt/my\040cache rw - tmpfs tmpfs rw
32 30 0:27 / /dev/shm/go rw - tmpfs tmpfs rw,size=1k
`
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	ms, err := check.ReadMountinfo(p)
	if err != nil || len(ms) != 4 {
		t.Fatalf("readMountinfo: %d mounts, %v", len(ms), err)
	}
	for _, tc := range []struct {
		path, point string
		seclabel    bool
	}{
		{"/home/u/.cache/go-build", "/", true},
		{"/dev/shm/go-cache", "/dev/shm", true},
		{"/dev/shm/go/x", "/dev/shm/go", false},
		{"/dev/shm", "/dev/shm", true},
		{"/mnt/my cache/go", "/mnt/my cache", false},
	} {
		m := findMount(ms, tc.path)
		if m == nil || m.Point != tc.point || m.HasOption("seclabel") != tc.seclabel {
			t.Errorf("findMount(%s) = %+v, want %s seclabel=%v", tc.path, m, tc.point, tc.seclabel)
		}
	}
}

func TestLabelType(t *testing.T) {
	for in, want := range map[string]string{
		"system_u:object_r:tmpfs_t:s0":                "tmpfs_t",
		"system_u:object_r:container_file_t:s0:c1,c2": "container_file_t",
		"garbage": "",
	} {
		if got := labelType(in); got != want {
			t.Errorf("labelType(%q) = %q, want %q", in, got, want)
		}
	}
}
