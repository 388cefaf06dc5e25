package buildtrace

import (
	"path/filepath"
	"strings"

	"github.com/gopatrol/gopatrol/agent/sense"
)

// Span kinds: what a process was, from its exec'd file.
const (
	KindGo      = "go"
	KindCompile = "compile"
	KindAsm     = "asm"
	KindLink    = "link"
	KindCgo     = "cgo"
	KindCC      = "cc"
	KindVet     = "vet"
	KindTest    = "test"
	KindExec    = "exec"   // anything else (git, sh, a generator)
	KindToolID  = "toolid" // a tool's -V=full: its version, for the build cache
	KindConnect = "connect"
	KindTLS     = "tls"
)

var ccNames = map[string]bool{"gcc": true, "cc": true, "clang": true, "g++": true, "c++": true, "clang++": true, "cc1": true, "cc1plus": true, "as": true, "ld": true, "collect2": true}

// kindOf classifies an exec'd file by its base name. goNames are the names
// that start a tree (a go command started by a go command is one too).
func kindOf(base string, goNames map[string]bool) string {
	switch {
	case goNames[base]:
		return KindGo
	case base == "compile", base == "asm", base == "link", base == "cgo", base == "vet":
		return base
	case strings.HasSuffix(base, ".test"):
		return KindTest
	case ccNames[base], strings.HasSuffix(base, "-gcc"), strings.HasSuffix(base, "-g++"):
		return KindCC
	}
	return KindExec
}

// isVersionQuery says argv is a tool's version query (-V=full, -V).
func isVersionQuery(args []string) bool {
	return len(args) == 2 && (args[1] == "-V=full" || args[1] == "-V")
}

// execName is the base name of the exec'd file, the comm when the filename
// says nothing.
func execName(filename, comm string) string {
	name := filepath.Base(filename)
	if name == "." || name == "/" || name == "" {
		return comm
	}
	return name
}

// argAfter returns the value of flag in args (-p pkg or -p=pkg).
func argAfter(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

// goValueFlags are the go command's flags (build, test, run, mod, generate)
// that take a separate value: the word after them is that value, never a
// package pattern.
var goValueFlags = map[string]bool{
	"C": true, "o": true, "p": true, "asmflags": true, "buildmode": true, "compiler": true,
	"gccgoflags": true, "gcflags": true, "installsuffix": true, "ldflags": true, "mod": true,
	"modfile": true, "overlay": true, "pgo": true, "pkgdir": true, "tags": true, "toolexec": true,
	"covermode": true, "coverpkg": true, "coverprofile": true, "exec": true, "run": true, "skip": true,
	"bench": true, "benchtime": true, "blockprofile": true, "blockprofilerate": true, "count": true,
	"cpu": true, "cpuprofile": true, "fuzz": true, "fuzztime": true, "fuzzminimizetime": true,
	"list": true, "memprofile": true, "memprofilerate": true, "mutexprofile": true,
	"mutexprofilefraction": true, "outputdir": true, "parallel": true, "shuffle": true,
	"timeout": true, "trace": true, "vet": true, "fuzzcachedir": true, "f": true, "json": false,
}

// subWithSub are the go subcommands whose next word is a subcommand too.
var subWithSub = map[string]bool{"mod": true, "work": true, "tool": true, "telemetry": true}

// patternSubs are the subcommands whose non-flag words are package (or
// module) patterns; for any other the patterns are not kept.
var patternSubs = map[string]bool{
	"build": true, "install": true, "test": true, "vet": true, "list": true, "get": true,
	"run": true, "generate": true, "mod download": true, "mod why": true, "fmt": true, "fix": true, "doc": true, "clean": true,
}

// subSubs are the second words of go mod, go work and go tool shown in a
// span name; another (a user's tool) is not.
var subSubs = map[string]bool{
	"download": true, "edit": true, "graph": true, "init": true, "tidy": true, "vendor": true,
	"verify": true, "why": true, "sync": true, "use": true, "compile": true, "link": true,
	"asm": true, "cgo": true, "vet": true, "cover": true, "pprof": true, "trace": true,
	"covdata": true, "nm": true, "objdump": true, "addr2line": true, "buildid": true,
}

const (
	maxPatterns   = 16
	maxPatternLen = 200
)

// GoCommand is the subcommand ("build", "mod download") and the package
// patterns of a go command's argv. Flags and their values are skipped; for
// go run only the package (or the .go files) is kept, not the program's
// arguments; go test's -args and everything after it are dropped; a word
// that could be a secret (has '=', "://", a space or a control character)
// is never kept.
func GoCommand(args []string) (sub string, patterns []string) {
	i := 1
	next := func() (string, bool) {
		for ; i < len(args); i++ {
			a := args[i]
			if a == "-args" || a == "--args" {
				// go test: everything after is the test binary's.
				i = len(args)
				return "", false
			}
			if a == "--" {
				continue
			}
			if strings.HasPrefix(a, "-") {
				name := strings.TrimLeft(a, "-")
				if !strings.Contains(name, "=") && goValueFlags[name] {
					i++ // skip its value
				}
				continue
			}
			i++
			return a, true
		}
		return "", false
	}
	w, ok := next()
	if !ok {
		return sense.SubcommandUnknown, nil
	}
	// The first word is bounded to the go command's own subcommands: it
	// labels a metric.
	sub = sense.Subcommand([]string{"go", w})
	if subWithSub[sub] {
		if w2, ok := next(); ok && subSubs[w2] {
			sub += " " + w2
		}
	}
	if !patternSubs[sub] {
		return sub, nil
	}
	for len(patterns) < maxPatterns {
		p, ok := next()
		if !ok {
			break
		}
		if !plainWord(p) || len(p) > maxPatternLen {
			continue
		}
		patterns = append(patterns, p)
		if sub == "run" && !strings.HasSuffix(p, ".go") {
			break // the rest are the program's arguments
		}
	}
	if sub == "run" {
		// go run a.go b.go arg: arguments start at the first non-.go word.
		for j, p := range patterns {
			if !strings.HasSuffix(p, ".go") && j > 0 {
				patterns = patterns[:j]
				break
			}
		}
	}
	return sub, patterns
}

// plainWord says whether w can be shown: a package pattern, a module
// path@version, a file name; not a key=value, URL or free text.
func plainWord(w string) bool {
	if w == "" || strings.Contains(w, "=") || strings.Contains(w, "://") {
		return false
	}
	for _, r := range w {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}
