package checktest

import (
	"context"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

// A printed fix is held to the doctor's word: the harness applies it in the
// world it was printed for, exactly as a person would, and runs the check
// again. ApplyFix understands the forms the checks print:
//
//   - `export KEY=value` and `unset KEY`: the world's environment changes
//     (a shell's $VAR is expanded from the world);
//   - a command (go, chmod, mkdir, rm, ln, chown, setfacl, chcon, cd), alone
//     or joined with && and ;: it runs under /bin/sh in the world, as its
//     build user (chown, setfacl and chcon as the administrator);
//   - "edit FILE line N: replace A with B" and "remove the KEY line from
//     FILE": the harness performs the edit.
//
// Alternatives are separated by ", or " (and "; or "); the first one the
// harness can apply is applied. A fix that holds a <placeholder> names a
// choice only the person can make (their proxy, their home): that is the
// fix saying it cannot be automated, and ApplyFix reports it as manual.

// FixOutcome is what ApplyFix did.
type FixOutcome struct {
	Applied string // the alternative that was applied
	Manual  string // why the fix cannot be automated (a placeholder)
}

var (
	editLine    = regexp.MustCompile(`^edit (\S+) line (\d+): replace (.+) with (.+)$`)
	removeLine  = regexp.MustCompile(`^remove the ([A-Z0-9_]+) line from (\S+)$`)
	placeholde  = regexp.MustCompile(`<[^<>]+>`)
	assignments = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*=\S*\s+)+`)
	commands    = []string{"go ", "chmod ", "mkdir ", "rm ", "ln ", "chown ", "setfacl ", "chcon ", "cd "}
)

// ApplyFix applies the fix printed in res to w. It fails the test when the
// fix is neither applicable nor says why it cannot be automated, or when
// applying it fails.
func ApplyFix(t testing.TB, w *World, fix string) FixOutcome {
	t.Helper()
	var manual []string
	for _, alt := range alternatives(fix) {
		// "give nobody write access: chown -R nobody DIR" leads in with
		// prose; the command is what follows the colon, perhaps quoted
		// ("relabel it: `chcon ...`").
		if _, cmd, ok := strings.Cut(alt, ": "); ok && !applicable(alt) && applicable(strings.Trim(cmd, "`")) {
			alt = strings.Trim(cmd, "`")
		}
		if p := placeholde.FindString(alt); p != "" {
			manual = append(manual, fmt.Sprintf("%q needs %s", alt, p))
			continue
		}
		switch {
		case strings.HasPrefix(alt, "export "):
			for _, kv := range strings.Fields(strings.TrimPrefix(alt, "export ")) {
				// export K='a|b' quotes for the shell; the value is a|b.
				k, v, _ := strings.Cut(kv, "=")
				w.Setenv(k + "=" + os.Expand(strings.Trim(v, "'"), w.Getenv))
			}
		case strings.HasPrefix(alt, "unset "):
			for _, k := range strings.Fields(strings.TrimPrefix(alt, "unset ")) {
				w.Unsetenv(k)
			}
		case editLine.MatchString(alt):
			m := editLine.FindStringSubmatch(alt)
			n, _ := strconv.Atoi(m[2])
			editFile(t, m[1], func(lines []string) []string {
				if n < 1 || n > len(lines) || !strings.Contains(lines[n-1], unquote(m[3])) {
					t.Fatalf("fix %q: line %d of %s does not hold %s", alt, n, m[1], m[3])
				}
				lines[n-1] = strings.Replace(lines[n-1], unquote(m[3]), unquote(m[4]), 1)
				return lines
			})
		case removeLine.MatchString(alt):
			m := removeLine.FindStringSubmatch(alt)
			editFile(t, m[2], func(lines []string) []string {
				var out []string
				for _, l := range lines {
					if !strings.HasPrefix(l, m[1]+"=") {
						out = append(out, l)
					}
				}
				return out
			})
		case isCommand(alt):
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			// A fix that hands a path to the build user, changes its ACL
			// or its SELinux label is for an administrator (or the
			// owner); everything else runs as the build user.
			target := w.Target
			if strings.Contains(alt, "chown ") || strings.Contains(alt, "setfacl ") || strings.Contains(alt, "chcon ") {
				target = &check.Target{Root: w.Target.Root, Dir: w.Target.Dir, Environ: w.Target.Environ}
			}
			out, err := check.CombinedOutput(target.Command(ctx, "/bin/sh", "-c", strings.Trim(alt, "`")))
			cancel()
			if err != nil {
				t.Fatalf("printed fix %q fails in its world: %v\n%s", alt, err, out)
			}
		default:
			continue
		}
		t.Logf("applied fix %q", alt)
		return FixOutcome{Applied: alt}
	}
	if len(manual) > 0 {
		return FixOutcome{Manual: strings.Join(manual, "; ")}
	}
	t.Errorf("fix %q can neither be applied nor says why it cannot be automated (a <placeholder>)", fix)
	return FixOutcome{}
}

// alternatives splits a fix at ", or " and "; or " outside parentheses
// (a remark may list causes: "(a full disk, or a shared GOCACHE)"),
// dropping a trailing parenthesised remark of each.
func alternatives(fix string) []string {
	var alts []string
	for a := range splitTopLevel(strings.ReplaceAll(fix, "; or ", ", or "), ", or ") {
		a = strings.TrimSpace(a)
		if i := strings.Index(a, " ("); i > 0 && strings.HasSuffix(a, ")") {
			a = strings.TrimSpace(a[:i])
		}
		alts = append(alts, strings.Trim(a, "`"))
	}
	return alts
}

// splitTopLevel yields the parts of s between the seps that are not
// inside parentheses.
func splitTopLevel(s, sep string) iter.Seq[string] {
	return func(yield func(string) bool) {
		depth, start := 0, 0
		for i := 0; i < len(s); i++ {
			switch {
			case s[i] == '(':
				depth++
			case s[i] == ')' && depth > 0:
				depth--
			case depth == 0 && strings.HasPrefix(s[i:], sep):
				if !yield(s[start:i]) {
					return
				}
				start = i + len(sep)
				i = start - 1
			}
		}
		yield(s[start:])
	}
}

// applicable reports whether the harness knows how to apply alt.
func applicable(alt string) bool {
	return strings.HasPrefix(alt, "export ") || strings.HasPrefix(alt, "unset ") ||
		editLine.MatchString(alt) || removeLine.MatchString(alt) || isCommand(alt)
}

// isCommand reports whether alt is a command the harness runs, possibly
// after variable assignments for it ("GOMODCACHE=/x go clean -modcache").
func isCommand(alt string) bool {
	alt = assignments.ReplaceAllString(alt, "")
	for _, c := range commands {
		if strings.HasPrefix(alt, c) {
			return true
		}
	}
	return false
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

func editFile(t testing.TB, path string, edit func([]string) []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		t.Fatalf("fix names %s: %v", path, err)
	}
	lines := edit(strings.Split(string(data), "\n"))
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// FixRerun applies res's fix in w and runs the check again: a root cause's
// fix must make it pass, unless the fix says it cannot be automated. A
// consequence (evidence "follows") carries no fix of its own. It reports
// whether the fixes were applied (false for a manual one).
func FixRerun(t testing.TB, w *World, c check.Check, res check.Result) (applied bool) {
	t.Helper()
	if res.Status != check.Fail && res.Status != check.Warn {
		return true
	}
	if res.Evidence["follows"] != "" {
		if res.Fix != "" {
			t.Errorf("%s follows from %s yet carries a fix %q: only root causes do", res.ID, res.Evidence["follows"], res.Fix)
		}
		return true
	}
	// A check that saw several things prints the fix of the worst; once
	// applied, the next finding shows with its own fix. Each round must
	// apply a different fix.
	var done []string
	for range 4 {
		o := ApplyFix(t, w, res.Fix)
		if o.Manual != "" {
			t.Logf("%s: fix cannot be automated: %s", res.ID, o.Manual)
			return false
		}
		if o.Applied == "" {
			return false
		}
		if slices.Contains(done, o.Applied) {
			t.Errorf("%s: fix %q was applied and is printed again: %s: %s %v", c.ID, o.Applied, res.Status, res.Summary, res.Evidence)
			return false
		}
		done = append(done, o.Applied)
		res = w.Run(c)
		// A skip after the fix is the check finding nothing to object
		// to (cgo disabled on purpose, say).
		if res.Status == check.Pass || res.Status == check.Skip {
			return true
		}
	}
	t.Errorf("%s after its fixes %q: %s: %s %v", c.ID, done, res.Status, res.Summary, res.Evidence)
	return false
}
