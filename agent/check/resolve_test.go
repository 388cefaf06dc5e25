package check_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

// hostWorld is a host's filesystem mounted at a directory of its own, as
// the agent sees the node at /host, with links that only mean the right
// thing inside that root. The same links are made at the outer level
// pointing elsewhere, so a walker that forgets Root gives another answer.
func hostWorld(t *testing.T) (outer, host string) {
	t.Helper()
	outer = t.TempDir()
	host = checktest.Mkdir(t, filepath.Join(outer, "host"), 0o755)
	checktest.Mkdir(t, filepath.Join(host, "ssd", "modcache"), 0o755)
	checktest.Mkdir(t, filepath.Join(host, "usr", "local", "go1.22.5", "bin"), 0o755)
	checktest.WriteFile(t, filepath.Join(host, "usr", "local", "go1.22.5", "bin", "go"), "#!/bin/sh\n", 0o755)
	checktest.Symlink(t, "go1.22.5", filepath.Join(host, "usr", "local", "go"))
	checktest.Symlink(t, "/ssd/modcache", filepath.Join(host, "mod"))                     // absolute: the host's /ssd
	checktest.Symlink(t, "/usr/local/go/bin/go", filepath.Join(host, "usr", "bin", "go")) // through a link in the middle
	checktest.Symlink(t, "../../../../../ssd", filepath.Join(host, "usr", "local", "up")) // climbs above the root
	checktest.Symlink(t, "/gone/away", filepath.Join(host, "dangling"))
	checktest.Symlink(t, "loop2", filepath.Join(host, "loop1"))
	checktest.Symlink(t, "loop1", filepath.Join(host, "loop2"))
	checktest.WriteFile(t, filepath.Join(host, "etc", "ssl", "real.pem"), "host roots\n", 0o644)
	checktest.Symlink(t, "/etc/ssl", filepath.Join(host, "etc", "certs")) // a linked directory
	return outer, host
}

func TestResolveHonoursRoot(t *testing.T) {
	_, host := hostWorld(t)
	target := &check.Target{Root: host}
	tests := []struct {
		path      string
		real      string
		links     []string // link paths followed, in order
		dangling  string
		missing   string
		errSubstr string
	}{
		{path: "/mod", real: "/ssd/modcache", links: []string{"/mod"}},
		{path: "/usr/bin/go", real: "/usr/local/go1.22.5/bin/go", links: []string{"/usr/bin/go", "/usr/local/go"}},
		{path: "/usr/local/up/modcache", real: "/ssd/modcache", links: []string{"/usr/local/up"}},
		// ".." after a link is the parent of where the link leads, as in the kernel.
		{path: "/mod/../modcache/./x", missing: "/ssd/modcache/x", links: []string{"/mod"}},
		{path: "/dangling/file", dangling: "/dangling", missing: "/gone", links: []string{"/dangling"}},
		{path: "/nope/x", missing: "/nope"},
		{path: "/loop1", errSubstr: "too many levels"},
		{path: "relative/x", errSubstr: "not an absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r, err := target.Resolve(tt.path)
			if tt.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSubstr) {
					t.Fatalf("err = %v, want %q", err, tt.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var links []string
			for _, l := range r.Links {
				links = append(links, l.Path)
			}
			if r.Real != tt.real || r.Missing != tt.missing || strings.Join(links, " ") != strings.Join(tt.links, " ") {
				t.Errorf("Resolve = %+v, want real %q missing %q links %v", r, tt.real, tt.missing, tt.links)
			}
			switch {
			case tt.dangling == "" && r.Dangling != nil:
				t.Errorf("dangling %v, want none", r.Dangling)
			case tt.dangling != "" && (r.Dangling == nil || r.Dangling.Path != tt.dangling):
				t.Errorf("dangling %v, want %s", r.Dangling, tt.dangling)
			}
			var de *check.DanglingError
			if gotErr := r.Err(); (tt.real == "") != (gotErr != nil) || (tt.dangling != "") != errors.As(gotErr, &de) ||
				(gotErr != nil && !errors.Is(gotErr, fs.ErrNotExist)) {
				t.Errorf("Err() = %v", gotErr)
			}
		})
	}
}

// Reading a file of a mounted host follows its links inside the host:
// /etc/certs -> /etc/ssl is the host's /etc/ssl, not this machine's.
func TestReadFileHonoursRoot(t *testing.T) {
	_, host := hostWorld(t)
	target := &check.Target{Root: host}
	b, err := target.ReadFile("/etc/certs/real.pem")
	if err != nil || string(b) != "host roots\n" {
		t.Errorf("ReadFile through a linked directory = %q, %v", b, err)
	}
	if _, err := target.ReadFile("/dangling"); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "/dangling") {
		t.Errorf("ReadFile of a dangling link: %v", err)
	}
	head, err := target.ReadHead("/usr/bin/go", 4)
	if err != nil || string(head) != "#!/b" {
		t.Errorf("ReadHead through links = %q, %v", head, err)
	}
	if got := target.StatN("/mod"); got != "'/mod' -> '/ssd/modcache'" {
		t.Errorf("StatN = %s", got)
	}
	if got := target.StatN("/nope"); !strings.Contains(got, "does not exist") {
		t.Errorf("StatN of a missing path = %s", got)
	}
}

func TestReadFileRefusesLargeFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: a gigabyte that takes no disk.
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := (&check.Target{Root: "/"}).ReadFile(p); !errors.Is(err, check.ErrTooLarge) || !strings.Contains(err.Error(), p) {
		t.Errorf("ReadFile of 1 GiB = %v, want ErrTooLarge naming the file", err)
	}
}

func TestWithin(t *testing.T) {
	for _, tt := range []struct {
		p, dir string
		want   bool
	}{
		{"/usr/local/go", "/usr/local/go", true},
		{"/usr/local/go/bin", "/usr/local/go", true},
		{"/usr/local/gopath", "/usr/local/go", false},
		{"/usr/local", "/usr/local/go", false},
		{"/", "/", true},
	} {
		if got := check.Within(tt.p, tt.dir); got != tt.want {
			t.Errorf("Within(%q, %q) = %v", tt.p, tt.dir, got)
		}
	}
}

func TestUserName(t *testing.T) {
	if got := (&check.Target{User: &check.User{Name: "builder"}}).UserName(); got != "builder" {
		t.Errorf("UserName = %q", got)
	}
	if got := (&check.Target{}).UserName(); got != strconv.Itoa(os.Geteuid()) {
		t.Errorf("UserName without a user = %q, want the euid", got)
	}
}

// Path and LinkPath under a mounted root never leave it: links are
// resolved inside the root, a missing tail is kept for creating it, and
// LinkPath leaves the last component alone for Lstat and Readlink.
func TestPathStaysInRoot(t *testing.T) {
	_, host := hostWorld(t)
	target := &check.Target{Root: host}
	for _, tt := range []struct{ path, want string }{
		{"/mod", "/ssd/modcache"},
		{"/mod/new/dir", "/ssd/modcache/new/dir"},
		{"/usr/bin/go", "/usr/local/go1.22.5/bin/go"},
		{"/dangling/file", "/gone/away/file"},
		{"/nope/a/b", "/nope/a/b"},
		{"/", "/"},
	} {
		if got := target.Path(tt.path); got != filepath.Join(host, tt.want) {
			t.Errorf("Path(%s) = %s, want %s under the root", tt.path, got, tt.want)
		}
	}
	if got := target.LinkPath("/usr/local/go"); got != filepath.Join(host, "usr/local/go") {
		t.Errorf("LinkPath = %s", got)
	}
	if got := target.LinkPath("/mod/x"); got != filepath.Join(host, "ssd/modcache/x") {
		t.Errorf("LinkPath through a linked directory = %s", got)
	}
	local := &check.Target{Root: "/"}
	if got := local.Path("/mod/x"); got != "/mod/x" {
		t.Errorf("Path with Root / = %s, want it unchanged", got)
	}
}
