package seclabel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
)

// FuzzMountinfo feeds check.ReadMountinfo a mountinfo file. On a host mounted at
// Target.Root it is a file of that host, so it is input like any other:
// every mount returned must come from a line of it, with a mount point no
// longer than the line's, and findMount must return a mount that holds the
// path asked about.
func FuzzMountinfo(f *testing.F) {
	f.Add([]byte(`22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,seclabel
30 22 0:25 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs shm rw,seclabel,size=65536k
31 22 0:26 / /mnt/my\040cache rw - tmpfs tmpfs rw
32 30 0:27 / /dev/shm/go rw - tmpfs tmpfs rw,size=1k
`), "/dev/shm/go/x")
	// Several optional fields, none, a missing separator, a separator too
	// early, a torn last line, escapes cut short, a line without super
	// options, CRLF.
	f.Add([]byte("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:2 propagate_from:3 - ext3 /dev/root rw,errors=continue\n"), "/mnt2/a")
	f.Add([]byte("1 2 3:4 / /a rw - \n"), "/a")
	f.Add([]byte("1 2 3:4 / /a rw ext4 /dev/x rw\n"), "/a")
	f.Add([]byte("- - - - - - - x y z\n1 2 - / /b rw - xfs"), "/b/c")
	f.Add([]byte("1 2 3:4 / /end\\04 rw - tmpfs t rw\n1 2 3:4 / /x\\\\y\\134 rw - tmpfs t rw"), "/end")
	f.Add([]byte("1 2 3:4 / /nosuper rw - tmpfs t\r\n"), "/nosuper/f")
	f.Add([]byte(""), "/")

	dir := f.TempDir()
	p := filepath.Join(dir, "mountinfo")
	f.Fuzz(func(t *testing.T, data []byte, path string) {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		ms, err := check.ReadMountinfo(p)
		if err != nil {
			// Only a line beyond the scanner's 1 MiB may stop it.
			if len(data) < 1<<20 {
				t.Fatalf("readMountinfo of %d bytes: %v", len(data), err)
			}
			return
		}
		if lines := strings.Count(string(data), "\n") + 1; len(ms) > lines {
			t.Fatalf("%d mounts from %d lines", len(ms), lines)
		}
		fields := map[string]bool{}
		for _, w := range strings.Fields(string(data)) {
			fields[w] = true
		}
		for _, m := range ms {
			if m.FSType == "" || m.Point == "" || m.MountOpts == "" {
				t.Fatalf("mount with an empty field: %+v", m)
			}
			if len(m.Point) > len(data) || !fields[m.FSType] || !fields[m.MountOpts] {
				t.Fatalf("mount %+v is not from the input", m)
			}
			// Seclabel is one of the options, not a substring of one.
			if m.HasOption("seclabel") != strings.Contains(","+m.Options()+",", ",seclabel,") {
				t.Fatalf("HasOption(seclabel)=%v for options %q", m.HasOption("seclabel"), m.Options())
			}
		}
		if !strings.HasPrefix(path, "/") {
			return
		}
		if got := findMount(ms, path); got != nil {
			if got.Point != "/" && got.Point != path && !strings.HasPrefix(path, got.Point+"/") {
				t.Fatalf("findMount(%q) = %q, which does not hold it", path, got.Point)
			}
			for _, m := range ms {
				if (m.Point == path || strings.HasPrefix(path, m.Point+"/")) && len(m.Point) > len(got.Point) {
					t.Fatalf("findMount(%q) = %q, but %q is closer", path, got.Point, m.Point)
				}
			}
		}
	})
}

// FuzzUnescapeOctal checks that the kernel's escaping of mount points
// (space, tab, newline and backslash as \ooo, show_mountinfo's
// seq_path_root) is undone exactly, and that no other input grows.
func FuzzUnescapeOctal(f *testing.F) {
	for _, s := range []string{"/mnt/my cache", "/a\tb\nc", `/back\slash`, `/x\040`, `\04`, `\999`, `\`, "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var esc strings.Builder
		for i := 0; i < len(s); i++ {
			switch c := s[i]; c {
			case ' ', '\t', '\n', '\\':
				esc.WriteString(`\` + string('0'+c>>6) + string('0'+c>>3&7) + string('0'+c&7))
			default:
				esc.WriteByte(c)
			}
		}
		if got := check.UnescapeMountinfo(esc.String()); got != s {
			t.Fatalf("check.UnescapeMountinfo(%q) = %q, want %q", esc.String(), got, s)
		}
		if got := check.UnescapeMountinfo(s); len(got) > len(s) {
			t.Fatalf("check.UnescapeMountinfo(%q) = %q grew", s, got)
		}
	})
}
