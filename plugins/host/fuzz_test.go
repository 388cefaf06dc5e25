package host_test

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/plugins/host"
)

// The manifest is read from disk before any plugin runs: whatever it holds,
// ParseManifest must not panic, and what it accepts must be well formed
// and read back the same once written in sha256sum's format.
func FuzzParseManifest(f *testing.F) {
	sum := strings.Repeat("0123456789abcdef", 4)
	for _, seed := range []string{
		"",
		sum + "  gopatrol-probe-aws\n",
		sum + " *gopatrol-probe-aws\n",
		"# comment\n\n" + sum + "  gopatrol-probe-aws\n" + strings.ToUpper(sum) + "  gopatrol-probe-gcp\r\n",
		sum + "  /usr/lib/gopatrol/plugins/gopatrol-probe-aws\n",
		sum + "  gopatrol-probe-aws\n" + strings.Repeat("f", 64) + "  gopatrol-probe-aws\n",
		"deadbeef gopatrol-probe-aws\n",
		sum + "\n",
		sum + "  \n",
		sum + "  ../../etc/passwd\n",
		sum + "\tgopatrol-probe-aws\n",
		"\\" + sum + "  gopatrol-probe-a\\\\b\n",
		strings.Repeat("x", 70000) + "\n",
		sum + "  dir/ leading space\n", // found by CI's fuzzing: the name keeps its spaces
		sum + "  /\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sums, err := host.ParseManifest(b, "SHA256SUMS")
		if err != nil {
			return
		}
		var again strings.Builder
		for _, name := range slices.Sorted(maps.Keys(sums)) {
			s := sums[name]
			if _, err := hex.DecodeString(s); err != nil || len(s) != 64 || s != strings.ToLower(s) {
				t.Fatalf("accepted sum %q for %q: want 64 lower-case hex digits", s, name)
			}
			if name == "" || strings.Contains(name, "/") || strings.ContainsAny(name, "\n") {
				t.Fatalf("accepted file name %q: want a base name", name)
			}
			fmt.Fprintf(&again, "%s  %s\n", s, name)
		}
		back, err := host.ParseManifest([]byte(again.String()), "rewritten")
		if err != nil || fmt.Sprint(back) != fmt.Sprint(sums) {
			t.Fatalf("rewritten manifest reads %v, %v; want %v", back, err, sums)
		}
	})
}
