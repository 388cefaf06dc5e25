package acl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The extended attributes that hold a file's access ACL and a directory's
// default ACL (what new files in it inherit).
const (
	XattrAccess  = "system.posix_acl_access"
	XattrDefault = "system.posix_acl_default"
)

// version is the only on-disk format version (POSIX_ACL_XATTR_VERSION).
const version = 2

// Tag is the kind of an ACL entry; the values are the kernel's.
type Tag uint16

const (
	UserObj  Tag = 0x01 // the file's owner: user::
	User     Tag = 0x02 // a named user: user:name:
	GroupObj Tag = 0x04 // the file's group: group::
	Group    Tag = 0x08 // a named group: group:name:
	Mask     Tag = 0x10 // upper bound for named users and all groups: mask::
	Other    Tag = 0x20 // everyone else: other::
)

// Perm is a set of permission bits as in an ACL entry.
type Perm uint16

const (
	Exec  Perm = 1
	Write Perm = 2
	Read  Perm = 4
)

// String renders p like getfacl: "r-x".
func (p Perm) String() string {
	b := []byte("---")
	if p&Read != 0 {
		b[0] = 'r'
	}
	if p&Write != 0 {
		b[1] = 'w'
	}
	if p&Exec != 0 {
		b[2] = 'x'
	}
	return string(b)
}

// undefinedID is the id of entries that name no one (user::, mask::...).
const undefinedID = ^uint32(0)

// Entry is one ACL entry. ID is a uid for User, a gid for Group, and
// meaningless for the other tags.
type Entry struct {
	Tag  Tag
	Perm Perm
	ID   uint32
}

// ACL is a list of entries in the kernel's order: user::, named users by
// uid, group::, named groups by gid, mask::, other::.
type ACL []Entry

// Parse decodes the binary value of a posix_acl xattr: a little-endian u32
// version (2), then 8-byte entries {u16 tag, u16 perm, u32 id}.
func Parse(b []byte) (ACL, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("acl: %d bytes, want at least the 4-byte header", len(b))
	}
	if v := binary.LittleEndian.Uint32(b); v != version {
		return nil, fmt.Errorf("acl: version %d, want %d", v, version)
	}
	b = b[4:]
	if len(b)%8 != 0 {
		return nil, fmt.Errorf("acl: %d bytes of entries, not a multiple of 8", len(b))
	}
	a := make(ACL, 0, len(b)/8)
	for ; len(b) > 0; b = b[8:] {
		e := Entry{
			Tag:  Tag(binary.LittleEndian.Uint16(b)),
			Perm: Perm(binary.LittleEndian.Uint16(b[2:])),
			ID:   binary.LittleEndian.Uint32(b[4:]),
		}
		switch e.Tag {
		case UserObj, User, GroupObj, Group, Mask, Other:
		default:
			return nil, fmt.Errorf("acl: entry %d has unknown tag %#x", len(a), e.Tag)
		}
		a = append(a, e)
	}
	return a, nil
}

// Marshal encodes a in the xattr format Parse reads.
func (a ACL) Marshal() []byte {
	b := binary.LittleEndian.AppendUint32(nil, version)
	for _, e := range a {
		id := e.ID
		if e.Tag != User && e.Tag != Group {
			id = undefinedID
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(e.Tag))
		b = binary.LittleEndian.AppendUint16(b, uint16(e.Perm))
		b = binary.LittleEndian.AppendUint32(b, id)
	}
	return b
}

// FromMode is the minimal ACL equivalent to permission bits, what a file
// without an ACL xattr has.
func FromMode(mode os.FileMode) ACL {
	m := Perm(mode.Perm())
	return ACL{{Tag: UserObj, Perm: m >> 6 & 7}, {Tag: GroupObj, Perm: m >> 3 & 7}, {Tag: Other, Perm: m & 7}}
}

// Extended reports whether a holds more than the mode bits (named entries
// or a mask).
func (a ACL) Extended() bool {
	return slices.ContainsFunc(a, func(e Entry) bool { return e.Tag == User || e.Tag == Group || e.Tag == Mask })
}

// find returns the entry with tag (the first one), if any.
func (a ACL) find(tag Tag) (Entry, bool) {
	for _, e := range a {
		if e.Tag == tag {
			return e, true
		}
	}
	return Entry{}, false
}

// Get returns the access and default ACLs of path, following symlinks as
// getfacl does. access is nil when the file has only mode bits; def is nil
// for files and for directories without a default ACL.
func Get(path string) (access, def ACL, err error) {
	if access, err = readXattr(path, XattrAccess); err != nil {
		return nil, nil, err
	}
	if def, err = readXattr(path, XattrDefault); err != nil {
		return nil, nil, err
	}
	return access, def, nil
}

func readXattr(path, name string) (ACL, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Getxattr(path, name, buf)
		switch {
		case err == nil:
			a, err := Parse(buf[:n])
			if err != nil {
				return nil, fmt.Errorf("%s of %s: %w", name, path, err)
			}
			return a, nil
		case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
			// No ACL (or a filesystem without ACL support): mode bits rule.
			return nil, nil
		case errors.Is(err, unix.ERANGE) && len(buf) < 1<<20:
			buf = make([]byte, len(buf)*4)
		default:
			return nil, fmt.Errorf("read %s of %s: %w", name, path, err)
		}
	}
}

// Subject is who asks for access: the credentials the kernel compares.
type Subject struct {
	UID    uint32
	GID    uint32
	Groups []uint32 // supplementary groups
}

func (s Subject) inGroup(gid uint32) bool {
	return s.GID == gid || slices.Contains(s.Groups, gid)
}

// Decision is the outcome of an access check and the entry that decided
// it, so that a report can point at it ("mask::--- takes away
// user:nobody:rwx").
type Decision struct {
	Allowed bool
	// By is the entry that matched the subject (for a group denial with
	// several matching groups, the last one that matched).
	By Entry
	// Masked is set when By granted the permission but the mask took it
	// away; MaskEntry is that mask.
	Masked    bool
	MaskEntry Entry
	// MaskIgnored is set when the mask is ---: the kernel then skips the
	// ACL and the mode bits decided; MaskEntry is that mask.
	MaskIgnored bool
	// Capability is set when root's CAP_DAC_OVERRIDE decided.
	Capability bool
}

// Decide answers whether s may have want on a file owned by owner:group
// whose access ACL is a (use FromMode for a file without one), as the
// kernel's acl_permission_check and posix_acl_permission do. Two kernel
// details matter: the owner is decided by user:: before anything else, and
// the ACL is consulted only when the group mode bits (the mask, when there
// is one) are not all clear; with mask::--- the named entries are skipped
// and the mode bits decide. For uid 0 it applies the capability override as
// well: read and write are always granted, exec when isDir or any execute
// mode bit is set.
func (a ACL) Decide(owner, group uint32, isDir bool, s Subject, want Perm) Decision {
	want &= Read | Write | Exec
	if s.UID == 0 {
		if want&Exec == 0 || isDir || a.modeExec() {
			return Decision{Allowed: true, Capability: true}
		}
	}
	userObj, _ := a.find(UserObj)
	if s.UID == owner {
		return Decision{Allowed: userObj.Perm&want == want, By: userObj}
	}
	groupBits, hasMask := a.find(Mask)
	if !hasMask {
		groupBits, _ = a.find(GroupObj)
	}
	if groupBits.Perm != 0 {
		return a.posixACLPermission(owner, group, s, want)
	}
	// The group bits are clear: plain mode bits, owning group or other.
	other, _ := a.find(Other)
	d := Decision{Allowed: other.Perm&want == want, By: other}
	if want&(groupBits.Perm^other.Perm) != 0 && s.inGroup(group) {
		d = Decision{Allowed: groupBits.Perm&want == want, By: groupBits}
	}
	if hasMask && a.Extended() {
		d.MaskIgnored, d.MaskEntry = true, groupBits
	}
	return d
}

// posixACLPermission is the kernel's posix_acl_permission.
func (a ACL) posixACLPermission(owner, group uint32, s Subject, want Perm) Decision {
	var (
		found bool
		last  Entry
	)
	for i, e := range a {
		switch e.Tag {
		case UserObj:
			if s.UID == owner {
				return Decision{Allowed: e.Perm&want == want, By: e}
			}
		case User:
			if e.ID == s.UID {
				return a.masked(i, want)
			}
		case GroupObj:
			if s.inGroup(group) {
				found, last = true, e
				if e.Perm&want == want {
					return a.masked(i, want)
				}
			}
		case Group:
			if s.inGroup(e.ID) {
				found, last = true, e
				if e.Perm&want == want {
					return a.masked(i, want)
				}
			}
		case Mask:
		case Other:
			if found {
				return Decision{By: last}
			}
			return Decision{Allowed: e.Perm&want == want, By: e}
		}
	}
	// The kernel returns EIO for an ACL without other::; deny.
	return Decision{}
}

// Reason says in words what decided d, naming entries with n.
func (d Decision) Reason(n Names) string {
	switch {
	case d.Capability:
		return "root's CAP_DAC_OVERRIDE"
	case d.Masked:
		return fmt.Sprintf("%s would allow it but %s takes it away", d.By.text(n), d.MaskEntry.text(n))
	case d.MaskIgnored:
		return fmt.Sprintf("%s clears the group mode bits, so the kernel skips the named ACL entries and %s decides", d.MaskEntry.text(n), d.By.text(n))
	case d.By.Tag == 0:
		return "malformed ACL (no other:: entry)"
	}
	return d.By.text(n)
}

func (e Entry) text(n Names) string {
	return strings.TrimSuffix(ACL{e}.Text("", n), "\n")
}

// modeExec reports whether any execute bit of the file mode is set: the
// owner's, other's, and the group bits, which hold the mask when there is
// one. Root may execute a file only then.
func (a ACL) modeExec() bool {
	group := GroupObj
	if _, ok := a.find(Mask); ok {
		group = Mask
	}
	for _, e := range a {
		if (e.Tag == UserObj || e.Tag == group || e.Tag == Other) && e.Perm&Exec != 0 {
			return true
		}
	}
	return false
}

// masked applies the mask that follows entry i, as the kernel's "mask:"
// label does; with no mask the entry's own permission decides.
func (a ACL) masked(i int, want Perm) Decision {
	e := a[i]
	for _, m := range a[i+1:] {
		if m.Tag == Mask {
			ok := e.Perm&m.Perm&want == want
			return Decision{Allowed: ok, By: e, Masked: !ok && e.Perm&want == want, MaskEntry: m}
		}
	}
	return Decision{Allowed: e.Perm&want == want, By: e}
}

// File is what Stat learns of one file: its owner, group, kind and ACLs.
type File struct {
	Path    string
	UID     uint32
	GID     uint32
	Mode    os.FileMode
	Access  ACL // nil when only mode bits apply
	Default ACL // nil when none
}

// Effective is the ACL the kernel decides with: the access ACL, or the
// mode bits when there is none.
func (f *File) Effective() ACL {
	if f.Access != nil {
		return f.Access
	}
	return FromMode(f.Mode)
}

// Decide answers whether s may have want on f.
func (f *File) Decide(s Subject, want Perm) Decision {
	return f.Effective().Decide(f.UID, f.GID, f.Mode.IsDir(), s, want)
}

// Stat reads path's owner, mode and ACLs, following symlinks as access
// checks on a path do.
func Stat(path string) (*File, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("stat %s: no ownership information", path)
	}
	f := &File{Path: path, UID: st.Uid, GID: st.Gid, Mode: fi.Mode()}
	if f.Access, f.Default, err = Get(path); err != nil {
		return nil, err
	}
	return f, nil
}

// Names turns ids into names for Text; a nil func or an unknown id prints
// the number, as getfacl -n does.
type Names struct {
	User  func(uid uint32) (string, bool)
	Group func(gid uint32) (string, bool)
}

func (n Names) user(id uint32) string {
	if n.User != nil {
		if s, ok := n.User(id); ok {
			return s
		}
	}
	return fmt.Sprint(id)
}

func (n Names) group(id uint32) string {
	if n.Group != nil {
		if s, ok := n.Group(id); ok {
			return s
		}
	}
	return fmt.Sprint(id)
}

// Text renders a in getfacl's form, one entry a line, each prefixed with
// prefix ("" or "default:"), with "#effective:" where the mask takes
// permissions away.
func (a ACL) Text(prefix string, n Names) string {
	var sb strings.Builder
	mask, hasMask := a.find(Mask)
	for _, e := range a {
		var line string
		switch e.Tag {
		case UserObj:
			line = "user::" + e.Perm.String()
		case User:
			line = "user:" + n.user(e.ID) + ":" + e.Perm.String()
		case GroupObj:
			line = "group::" + e.Perm.String()
		case Group:
			line = "group:" + n.group(e.ID) + ":" + e.Perm.String()
		case Mask:
			line = "mask::" + e.Perm.String()
		case Other:
			line = "other::" + e.Perm.String()
		}
		if hasMask && (e.Tag == User || e.Tag == GroupObj || e.Tag == Group) && e.Perm&^mask.Perm != 0 {
			line += "\t#effective:" + (e.Perm & mask.Perm).String()
		}
		sb.WriteString(prefix + line + "\n")
	}
	return sb.String()
}

// Text renders f like `getfacl path`: the header, the access ACL (the mode
// bits when there is none) and the default ACL.
func (f *File) Text(n Names) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# file: %s\n# owner: %s\n# group: %s\n", strings.TrimPrefix(f.Path, "/"), n.user(f.UID), n.group(f.GID))
	sb.WriteString(f.Effective().Text("", n))
	if f.Default != nil {
		sb.WriteString(f.Default.Text("default:", n))
	}
	return sb.String()
}

// String renders one entry like getfacl, with numeric ids.
func (e Entry) String() string {
	return e.text(Names{})
}
