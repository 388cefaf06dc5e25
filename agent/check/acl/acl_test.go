package acl

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/internal/testgate"
)

const (
	nobody  = 65534
	nogroup = 65534
	owner   = 1000
	group   = 1000
)

// TestDecide walks posix_acl_permission's branches on hand-built ACLs.
func TestDecide(t *testing.T) {
	base := func(extra ...Entry) ACL {
		a := ACL{{Tag: UserObj, Perm: 7}}
		for _, e := range extra {
			if e.Tag == User {
				a = append(a, e)
			}
		}
		a = append(a, Entry{Tag: GroupObj, Perm: 5})
		for _, e := range extra {
			if e.Tag == Group || e.Tag == Mask {
				a = append(a, e)
			}
		}
		return append(a, Entry{Tag: Other, Perm: 0})
	}
	sub := Subject{UID: nobody, GID: nogroup}
	tests := []struct {
		name    string
		acl     ACL
		s       Subject
		want    Perm
		allowed bool
		by      Tag
		masked  bool
	}{
		{"owner by user::", base(), Subject{UID: owner, GID: 5}, Read | Write | Exec, true, UserObj, false},
		{"owner denied by user:: even if other grants", ACL{{Tag: UserObj, Perm: 0}, {Tag: GroupObj, Perm: 7}, {Tag: Other, Perm: 7}}, Subject{UID: owner, GID: group}, Read, false, UserObj, false},
		{"other denies a stranger", base(), sub, Exec, false, Other, false},
		{"named user grants", base(Entry{Tag: User, Perm: 7, ID: nobody}, Entry{Tag: Mask, Perm: 7}), sub, Exec, true, User, false},
		{"named user taken away by the mask", base(Entry{Tag: User, Perm: 7, ID: nobody}, Entry{Tag: Mask, Perm: 1}), sub, Read, false, User, true},
		{"mask --- skips the ACL, other denies", base(Entry{Tag: User, Perm: 7, ID: nobody}, Entry{Tag: Mask, Perm: 0}), sub, Exec, false, Other, false},
		{"mask --- skips the ACL, other grants", append(base(Entry{Tag: Group, Perm: 0, ID: nogroup}, Entry{Tag: Mask, Perm: 0})[:4:4], Entry{Tag: Other, Perm: 7}), sub, Exec, true, Other, false},
		{"named user without mask (malformed but decided)", ACL{{Tag: UserObj, Perm: 7}, {Tag: User, Perm: 5, ID: nobody}, {Tag: GroupObj, Perm: 1}, {Tag: Other}}, sub, Exec, true, User, false},
		{"named user lacks the bit", base(Entry{Tag: User, Perm: 4, ID: nobody}, Entry{Tag: Mask, Perm: 7}), sub, Exec, false, User, false},
		{"owning group grants", base(), Subject{UID: nobody, GID: group}, Read | Exec, true, GroupObj, false},
		{"owning group, write not granted, other not consulted", ACL{{Tag: UserObj, Perm: 7}, {Tag: GroupObj, Perm: 5}, {Tag: Other, Perm: 7}}, Subject{UID: nobody, GID: group}, Write, false, GroupObj, false},
		{"named group by supplementary group", base(Entry{Tag: Group, Perm: 5, ID: 77}, Entry{Tag: Mask, Perm: 5}), Subject{UID: nobody, GID: nogroup, Groups: []uint32{77}}, Exec, true, Group, false},
		{"named group masked", base(Entry{Tag: Group, Perm: 5, ID: 77}, Entry{Tag: Mask, Perm: 4}), Subject{UID: nobody, GID: 77}, Exec, false, Group, true},
		{"second matching group grants", base(Entry{Tag: Group, Perm: 4, ID: 77}, Entry{Tag: Group, Perm: 1, ID: 78}, Entry{Tag: Mask, Perm: 7}), Subject{UID: nobody, GID: 77, Groups: []uint32{78}}, Exec, true, Group, false},
		{"root reads anything", ACL{{Tag: UserObj}, {Tag: GroupObj}, {Tag: Other}}, Subject{UID: 0}, Read | Write, true, 0, false},
		{"root cannot exec a file without any x bit", ACL{{Tag: UserObj, Perm: 6}, {Tag: GroupObj, Perm: 6}, {Tag: Other, Perm: 6}}, Subject{UID: 0, GID: 0}, Exec, false, Other, false},
		{"root execs when only the mask has x", ACL{{Tag: UserObj, Perm: 6}, {Tag: User, Perm: 7, ID: 5}, {Tag: GroupObj, Perm: 6}, {Tag: Mask, Perm: 7}, {Tag: Other, Perm: 6}}, Subject{UID: 0, GID: 0}, Exec, true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.acl.Decide(owner, group, false, tt.s, tt.want)
			if d.Allowed != tt.allowed || d.By.Tag != tt.by || d.Masked != tt.masked {
				t.Errorf("Decide(%v) = %+v, want allowed=%v by=%#x masked=%v", tt.acl, d, tt.allowed, tt.by, tt.masked)
			}
			if tt.masked && d.MaskEntry.Tag != Mask {
				t.Errorf("masked decision does not name the mask: %+v", d)
			}
		})
	}
}

func TestParseMarshal(t *testing.T) {
	a := ACL{{Tag: UserObj, Perm: 7}, {Tag: User, Perm: 5, ID: 42}, {Tag: GroupObj, Perm: 5}, {Tag: Mask, Perm: 5}, {Tag: Other}}
	b, err := Parse(a.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if b[i].Tag != a[i].Tag || b[i].Perm != a[i].Perm || (a[i].Tag == User && b[i].ID != 42) {
			t.Fatalf("round trip: %v != %v", b, a)
		}
	}
	for _, bad := range [][]byte{nil, {1, 0, 0, 0}, {2, 0, 0, 0, 1}, append([]byte{2, 0, 0, 0}, 0x40, 0, 7, 0, 0, 0, 0, 0)} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%x) succeeded", bad)
		}
	}
}

// setfacl applies spec to path with the real tool.
func setfacl(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("setfacl", args...).CombinedOutput(); err != nil {
		t.Fatalf("setfacl %v: %v: %s", args, err, out)
	}
}

func needTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"setfacl", "getfacl"} {
		testgate.Tool(t, tool, "acl")
	}
}

// TestRealFiles sets ACLs with setfacl and reads them back through the
// xattrs; the text must be what `getfacl -n` prints.
func TestRealFiles(t *testing.T) {
	needTools(t)
	dir := t.TempDir()
	tests := []struct {
		name    string
		isDir   bool
		args    []string
		access  bool // an access ACL xattr exists
		def     bool
		entries []Entry // expected access entries (ids of named ones)
	}{
		{"mode bits only", false, nil, false, false, nil},
		{"named user and group with mask", false, []string{"-m", "u:nobody:rwx,g:nogroup:r-x,m::r-x"}, true, false,
			[]Entry{{Tag: UserObj, Perm: 6}, {Tag: User, Perm: 7, ID: nobody}, {Tag: GroupObj, Perm: 4}, {Tag: Group, Perm: 5, ID: nogroup}, {Tag: Mask, Perm: 5}, {Tag: Other, Perm: 4}}},
		{"default ACL on a directory", true, []string{"-d", "-m", "u:nobody:r-x,g:nogroup:rwx"}, false, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if tt.isDir {
				if err := os.Mkdir(p, 0o750); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, map[bool]os.FileMode{true: 0o750, false: 0o644}[tt.isDir]); err != nil {
				t.Fatal(err)
			}
			if tt.args != nil {
				setfacl(t, append(tt.args, p)...)
			}
			f, err := Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if (f.Access != nil) != tt.access || (f.Default != nil) != tt.def {
				t.Fatalf("access=%v default=%v, want access=%v default=%v", f.Access, f.Default, tt.access, tt.def)
			}
			if tt.entries != nil && !slices.EqualFunc(f.Access, tt.entries, func(a, b Entry) bool {
				return a.Tag == b.Tag && a.Perm == b.Perm && (a.Tag != User && a.Tag != Group || a.ID == b.ID)
			}) {
				t.Errorf("entries %v, want %v", f.Access, tt.entries)
			}
			out, err := exec.Command("getfacl", "-n", p).Output()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := f.Text(Names{}), strings.TrimRight(string(out), "\n")+"\n"; got != want {
				t.Errorf("Text:\n%s\ngetfacl -n:\n%s", got, want)
			}
		})
	}
}

// TestKernelAgrees checks Decide against the kernel itself: nobody's
// access(2) to files whose ACLs setfacl wrote, run through setpriv.
func TestKernelAgrees(t *testing.T) {
	needTools(t)
	testgate.Root(t, "ask the kernel as nobody")
	testgate.Tool(t, "setpriv", "util-linux")
	// Not t.TempDir: its parent is 0700 and nobody could not reach the files.
	dir, err := os.MkdirTemp("", "acltest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mode os.FileMode
		spec string
	}{
		{"mode 0700", 0o700, ""},
		{"mode 0705", 0o705, ""},
		{"named nobody rwx", 0o700, "u:nobody:rwx"},
		{"named nobody masked", 0o700, "u:nobody:rwx,m::---"},
		{"named nobody masked to r", 0o700, "u:nobody:rwx,m::r--"},
		{"named nobody masked, other r-x", 0o705, "u:nobody:rwx,m::---"},
		{"named nogroup r-x", 0o700, "g:nogroup:r-x"},
		{"nogroup found, other would grant", 0o707, "g:nogroup:---"},
		{"owning group nogroup", 0o750, ""},
	}
	sub := Subject{UID: nobody, GID: nogroup}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if err := os.Mkdir(p, tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tt.mode); err != nil {
				t.Fatal(err)
			}
			if tt.name == "owning group nogroup" {
				if err := os.Chown(p, 0, nogroup); err != nil {
					t.Fatal(err)
				}
			}
			if tt.spec != "" {
				setfacl(t, "-m", tt.spec, p)
			}
			f, err := Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range []struct {
				perm Perm
				flag string
			}{{Read, "-r"}, {Write, "-w"}, {Exec, "-x"}} {
				kernel := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "test", w.flag, p).Run() == nil
				if d := f.Decide(sub, w.perm); d.Allowed != kernel {
					t.Errorf("%s: Decide says %v (by %v), the kernel says %v", w.perm, d.Allowed, d.By, kernel)
				}
			}
		})
	}
}
