package goenv

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
)

// FuzzGoEnvFile checks that the doctor reads a GOENV file (or
// GOROOT/go.env) the way cmd/go's readEnvFile does, since the diagnosis
// is about what the go command sees: lines split at \n only, a line
// counts when it starts with A-Z and has an =, the key is everything
// before the first = and the value everything after, untrimmed, and a
// later line wins. Anything else would report a setting the go command
// ignores, or miss one it uses.
func FuzzGoEnvFile(f *testing.F) {
	// What go env -w writes, what people write by hand, and what the go
	// command silently skips.
	f.Add([]byte("GOFLAGS=-mod=mod\nGOPROXY=https://proxy.example,direct\n"))
	f.Add([]byte("# go.env\nGOTOOLCHAIN=auto\n\nGOSUMDB=sum.golang.org\n"))
	f.Add([]byte("GOFLAGS=-bogusflag\n"))
	f.Add([]byte("GONOSUMDB=\nGOAUTH=netrc\n#GOPROXY=off"))
	f.Add([]byte("GOPROXY=https://user:secret@proxy.example\n"))

	path := filepath.Join(f.TempDir(), "env")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for line := range strings.SplitSeq(string(data), "\n") {
			i := strings.IndexByte(line, '=')
			if i < 0 || line[0] < 'A' || line[0] > 'Z' {
				continue
			}
			want[line[:i]] = line[i+1:]
		}
		got := check.ReadGoEnvFile(path)
		if !maps.Equal(got, want) {
			t.Fatalf("ReadGoEnvFile(%q) = %q, cmd/go reads %q", data, got, want)
		}

		// env.config reports as ignored exactly the lines that are
		// neither settings nor blank nor comments.
		var wantIgnored []string
		for n, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			line = strings.TrimSuffix(line, "\r") // as bufio.ScanLines
			i := strings.IndexByte(line, '=')
			if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") || i >= 0 && line[0] >= 'A' && line[0] <= 'Z' {
				continue
			}
			wantIgnored = append(wantIgnored, fmt.Sprintf("line %d: %q", n+1, line))
		}
		ev := map[string]string{}
		s := &settings{t: &check.Target{Root: "/"}, goenv: path}
		checkGoEnvFile(s, ev, func(check.Status, string, string, ...any) {})
		if got := ev["GOENV.ignored"]; got != strings.Join(wantIgnored, "; ") {
			t.Fatalf("env.config reports ignored lines %q, want %q", got, strings.Join(wantIgnored, "; "))
		}
	})
}

// FuzzGOFLAGS checks the GOFLAGS splitting (cmd/internal/quoted.Split):
// any list of words joined as quoted.Join joins them splits back into the
// same words, and for any input the words are bounded by it and
// checkGOFLAGS accepts only words that look like flags.
func FuzzGOFLAGS(f *testing.F) {
	for _, s := range []string{
		"-mod=mod -trimpath",
		"-mod=mod trimpath",
		`-mod=mod '-ldflags=-s -w`,
		`-ldflags="-s -w" -tags=netgo`,
		`'-gcflags=all=-N -l' "-tags=a b"`,
		"-", "--", "---x", "-=x", "--=x", "\t-x\r\n-y ",
		`"'"` + " '\"'",
		"-mod=mod -bogusflag",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := splitQuoted(s)
		if err != nil {
			if !strings.Contains(err.Error(), "unterminated") {
				t.Fatalf("splitQuoted(%q): %v", s, err)
			}
			if bad := checkGOFLAGS(s); bad == "" {
				t.Fatalf("checkGOFLAGS(%q) accepts what does not split", s)
			}
			return
		}
		total := 0
		for _, w := range words {
			total += len(w)
		}
		if total > len(s) || len(words) > len(s) {
			t.Fatalf("splitQuoted(%q) = %q: more than the input", s, words)
		}
		if bad := checkGOFLAGS(s); bad == "" {
			for _, w := range words {
				if !strings.HasPrefix(w, "-") || strings.TrimLeft(w, "-") == "" || strings.HasPrefix(w, "---") {
					t.Fatalf("checkGOFLAGS(%q) accepts the word %q", s, w)
				}
			}
		} else if !strings.Contains(bad, "non-flag") {
			t.Fatalf("checkGOFLAGS(%q) = %q: names no bad word", s, bad)
		}

		// Round trip: quote each word as quoted.Join does, split again.
		joined, ok := joinQuoted(words)
		if !ok {
			return
		}
		again, err := splitQuoted(joined)
		if err != nil || !slices.Equal(again, words) {
			t.Fatalf("splitQuoted(join(%q)) = %q, %v", words, again, err)
		}
	})
}

// joinQuoted is quoted.Join's rule: a word with a space or a quote is
// wrapped in the quote it does not contain; a word with both, or an empty
// one, cannot be written.
func joinQuoted(words []string) (string, bool) {
	var b strings.Builder
	for i, w := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		switch {
		case w == "":
			b.WriteString("''")
		case !strings.ContainsAny(w, " \t\n\r'\""):
			b.WriteString(w)
		case !strings.Contains(w, "'"):
			b.WriteString("'" + w + "'")
		case !strings.Contains(w, `"`):
			b.WriteString(`"` + w + `"`)
		default:
			return "", false
		}
	}
	return b.String(), true
}
