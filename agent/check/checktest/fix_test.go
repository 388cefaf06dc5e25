package checktest

import (
	"slices"
	"testing"
)

func TestAlternatives(t *testing.T) {
	for _, tc := range []struct {
		fix  string
		want []string
	}{
		{"go clean -cache (then look for the cause: a full disk, or two machines sharing one GOCACHE)",
			[]string{"go clean -cache"}},
		{"export CC=/usr/bin/gcc, or install <gcc: apt-get install gcc>",
			[]string{"export CC=/usr/bin/gcc", "install <gcc: apt-get install gcc>"}},
		{"relabel it: `chcon -R x /c` (lost on relabel), or for good `semanage fcontext -a -t t '/c(/.*)?' && restorecon -R /c`; or move it: go env -w GOCACHE=/d",
			[]string{"relabel it: `chcon -R x /c", "for good `semanage fcontext -a -t t '/c(/.*)?' && restorecon -R /c", "move it: go env -w GOCACHE=/d"}},
	} {
		if got := alternatives(tc.fix); !slices.Equal(got, tc.want) {
			t.Errorf("alternatives(%q)\n got %q\nwant %q", tc.fix, got, tc.want)
		}
	}
}
