package build

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzIndexEntry feeds readIndexEntry a build cache action entry. GOCACHE
// may be shared or written by anyone who can run go as that user, so
// entries are untrusted: a parsed entry must be one cmd/go's writer could
// have produced for that action (the fixed layout, a hex output ID, a
// non-negative size), and one written by that writer must parse back to
// what was written.
func FuzzIndexEntry(f *testing.F) {
	id := strings.Repeat("ab", 32)
	good := fmt.Sprintf("v1 %s %s %20d %20d\n", id, strings.Repeat("cd", 32), 12, 1700000000000000000)
	f.Add([]byte(good), []byte(strings.Repeat("ef", 32)), int64(7))
	// The malformed entries the tests know, and near misses.
	f.Add([]byte("v1 "+id+"\n"), []byte("x"), int64(0))
	f.Add([]byte("v2"+good[2:]), []byte{}, int64(-1))
	f.Add([]byte(strings.Replace(good, fmt.Sprintf("%20d", 12), fmt.Sprintf("%20s", "x"), 1)), []byte{0}, int64(1<<62))
	f.Add([]byte(strings.Replace(good, fmt.Sprintf("%20d", 12), fmt.Sprintf("%20s", "+12"), 1)), []byte{1}, int64(1))
	f.Add([]byte(strings.Replace(good, fmt.Sprintf("%20d", 12), fmt.Sprintf("%20s", "-1"), 1)), []byte{2}, int64(2))
	f.Add([]byte(strings.Replace(good, "cd", "zz", 1)), []byte{3}, int64(3))
	f.Add([]byte(strings.ToUpper(good)), []byte{4}, int64(4))

	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, entry, out []byte, size int64) {
		// The file is named after the action ID it claims, as in the cache.
		name := "entry-a"
		if len(entry) >= 3+hashHex {
			if _, err := hex.DecodeString(string(entry[3 : 3+hashHex])); err == nil {
				name = string(entry[3:3+hashHex]) + "-a"
			}
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, entry, 0o600); err != nil {
			t.Fatal(err)
		}
		gotOut, gotSize, err := readIndexEntry(p)
		if err == nil {
			if len(entry) != entrySize || len(gotOut) != hashHex || gotSize < 0 {
				t.Fatalf("readIndexEntry(%q) = %q, %d", entry, gotOut, gotSize)
			}
			if _, err := hex.DecodeString(gotOut); err != nil || string(entry[4+hashHex:4+2*hashHex]) != gotOut {
				t.Fatalf("output ID %q is not the entry's hex field", gotOut)
			}
		} else if gotOut != "" || gotSize != 0 {
			t.Fatalf("readIndexEntry(%q) failed (%v) but returned %q, %d", entry, err, gotOut, gotSize)
		}

		// Round trip through cmd/go's writer (cache.putIndexEntry).
		if size < 0 {
			size = -(size + 1)
		}
		var outID [32]byte
		copy(outID[:], out)
		written := fmt.Sprintf("v1 %s %x %20d %20d\n", id, outID, size, 1700000000000000000)
		p = filepath.Join(dir, id+"-a")
		if err := os.WriteFile(p, []byte(written), 0o600); err != nil {
			t.Fatal(err)
		}
		gotOut, gotSize, err = readIndexEntry(p)
		if err != nil || gotOut != hex.EncodeToString(outID[:]) || gotSize != size {
			t.Fatalf("entry %q read back as %q, %d, %v", written, gotOut, gotSize, err)
		}
	})
}
