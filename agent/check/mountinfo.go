package check

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Mount is one line of a mountinfo file (proc(5)).
type Mount struct {
	Point     string
	FSType    string
	MountOpts string // per-mount options (ro, noexec)
	SuperOpts string // the superblock's (seclabel)
}

// Options are the mount's per-mount and superblock options, as mount(8)
// prints them.
func (m *Mount) Options() string { return m.MountOpts + "," + m.SuperOpts }

// HasOption says o is one of the mount's options (seclabel, noexec, ro).
func (m *Mount) HasOption(o string) bool {
	for _, x := range strings.Split(m.Options(), ",") {
		if x == o {
			return true
		}
	}
	return false
}

// ReadMountinfo parses a mountinfo file such as /proc/self/mountinfo:
// id parent major:minor root point options [optional...] - fstype source superoptions
func ReadMountinfo(path string) ([]Mount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var ms []Mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fs {
			if x == "-" && i >= 6 {
				sep = i
				break
			}
		}
		if sep < 0 || len(fs) < sep+3 {
			continue
		}
		m := Mount{Point: UnescapeMountinfo(fs[4]), MountOpts: fs[5], FSType: fs[sep+1]}
		if len(fs) > sep+3 {
			m.SuperOpts = fs[sep+3]
		}
		ms = append(ms, m)
	}
	return ms, sc.Err()
}

// UnescapeMountinfo undoes the kernel's octal escapes of a mountinfo
// field (\040 for a space, \011 for a tab, \012, \134).
func UnescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + (c - '0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
