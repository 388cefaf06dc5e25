package acl

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// FuzzParse feeds Parse the bytes of a posix_acl xattr, which any user who
// owns a file can set (setfacl, or setxattr with raw bytes), and checks
// what the rest of the package relies on: a parsed ACL re-encodes to the
// same bytes (ids of unnamed entries aside), renders one getfacl line per
// entry, and Decide answers every subject without panicking and in line
// with the kernel's fixed rules (owner by user::, root by capability).
func FuzzParse(f *testing.F) {
	enc := func(entries ...Entry) []byte { return ACL(entries).Marshal() }
	// What setfacl writes: the mode-bits ACL, a named user with a mask,
	// a named group, and a mask of --- (the kernel skips the ACL then).
	f.Add(enc(FromMode(0o750)...))
	f.Add(enc(Entry{Tag: UserObj, Perm: 7}, Entry{Tag: User, Perm: 5, ID: 65534}, Entry{Tag: GroupObj, Perm: 5}, Entry{Tag: Mask, Perm: 5}, Entry{Tag: Other}))
	f.Add(enc(Entry{Tag: UserObj, Perm: 6}, Entry{Tag: GroupObj, Perm: 4}, Entry{Tag: Group, Perm: 7, ID: 77}, Entry{Tag: Mask, Perm: 0}, Entry{Tag: Other, Perm: 4}))
	// Malformed: empty, header only, wrong version, a torn entry, an
	// unknown tag, no other:: (the kernel's EIO), entries out of order.
	f.Add([]byte{})
	f.Add([]byte{2, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{2, 0, 0, 0, 1, 0, 7})
	f.Add([]byte{2, 0, 0, 0, 0x40, 0, 7, 0, 0, 0, 0, 0})
	f.Add(enc(Entry{Tag: UserObj, Perm: 7}, Entry{Tag: GroupObj, Perm: 5}))
	f.Add(enc(Entry{Tag: Other, Perm: 7}, Entry{Tag: Mask, Perm: 1}, Entry{Tag: User, Perm: 0xffff, ID: 0}))

	subjects := []Subject{
		{UID: 0},
		{UID: 1000, GID: 1000},
		{UID: 65534, GID: 65534},
		{UID: 65534, GID: 65534, Groups: []uint32{77, 1000}},
		{UID: 4242, GID: 77},
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Parse(b)
		if err != nil {
			if a != nil {
				t.Fatalf("Parse returned %v with error %v", a, err)
			}
			if !strings.HasPrefix(err.Error(), "acl: ") {
				t.Fatalf("error %q does not say it is about an ACL", err)
			}
			return
		}
		if want := (len(b) - 4) / 8; len(a) != want {
			t.Fatalf("%d entries from %d bytes, want %d", len(a), len(b), want)
		}
		// Marshal is the inverse of Parse up to the ids of entries that
		// name no one, which the kernel ignores and setfacl writes as -1.
		m := a.Marshal()
		if len(m) != len(b) || !bytes.Equal(m[:4], b[:4]) {
			t.Fatalf("Marshal(Parse(%x)) = %x", b, m)
		}
		for i := range a {
			got, orig := m[4+8*i:12+8*i], b[4+8*i:12+8*i]
			named := a[i].Tag == User || a[i].Tag == Group
			if !bytes.Equal(got[:4], orig[:4]) || named && !bytes.Equal(got[4:], orig[4:]) ||
				!named && binary.LittleEndian.Uint32(got[4:]) != undefinedID {
				t.Fatalf("entry %d: re-encoded as %x, was %x", i, got, orig)
			}
		}
		again, err := Parse(m)
		if err != nil || len(again) != len(a) {
			t.Fatalf("Parse(Marshal(a)) = %v, %v", again, err)
		}

		text := a.Text("default:", Names{})
		if n := strings.Count(text, "\n"); n != len(a) {
			t.Fatalf("Text has %d lines for %d entries:\n%s", n, len(a), text)
		}
		for line := range strings.SplitSeq(strings.TrimSuffix(text, "\n"), "\n") {
			if len(a) > 0 && !strings.HasPrefix(line, "default:") {
				t.Fatalf("Text line %q lacks the prefix", line)
			}
		}

		userObj, hasUserObj := a.find(UserObj)
		for _, s := range subjects {
			for want := Perm(0); want <= Read|Write|Exec; want++ {
				d := a.Decide(1000, 1000, false, s, want)
				if d.Reason(Names{}) == "" {
					t.Fatalf("Decide(%+v, %s) = %+v with no reason", s, want, d)
				}
				switch {
				case s.UID == 0 && want&Exec == 0:
					if !d.Allowed || !d.Capability {
						t.Fatalf("root denied %s: %+v", want, d)
					}
				case s.UID == 1000:
					// The owner is decided by user:: alone.
					if ok := hasUserObj && userObj.Perm&want == want || !hasUserObj && want == 0; d.Allowed != ok {
						t.Fatalf("owner wants %s from %v: allowed=%v, want %v", want, a, d.Allowed, ok)
					}
				}
				if want == 0 && !d.Allowed && d.By.Tag != 0 {
					// Asking for nothing is refused only for a malformed
					// ACL without other:: (the kernel's EIO).
					t.Fatalf("empty request refused by %v: %+v", d.By, d)
				}
			}
		}
	})
}
