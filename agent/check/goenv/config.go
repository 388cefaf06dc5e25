package goenv

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/toolchain"
)

var envConfig = check.Check{
	ID:     "env.config",
	Title:  "go settings parse and mean what they should",
	Source: "1",
	// The settings checked here are the usual reasons `go env` itself
	// fails (an unknown GOEXPERIMENT), so this check runs without it.
	NoToolchain: true,
	Run:         runConfig,
}

// settings is where env.config reads the go command's configuration: from
// `go env` when it worked, else from the environment and the files the go
// command would read.
type settings struct {
	t        *check.Target
	tc       *check.Toolchain
	goroot   string
	goenv    string            // the GOENV file, "" when off
	file     map[string]string // its KEY=value lines
	rootFile map[string]string // GOROOT/go.env
}

func loadSettings(env *check.Env) *settings {
	s := &settings{t: env.Target, tc: env.Toolchain}
	ok := s.tc != nil && s.tc.Err == nil
	if ok {
		s.goroot, s.goenv = s.tc.Get("GOROOT"), s.tc.Get("GOENV")
	} else {
		s.goroot = s.t.Getenv("GOROOT")
		if s.goroot == "" && s.tc != nil && s.tc.Go != "" {
			s.goroot = filepath.Dir(filepath.Dir(s.tc.Go))
		}
		s.goenv = toolchain.DefaultGOENV(s.t)
	}
	if s.goenv == "off" {
		s.goenv = ""
	}
	if s.goenv != "" {
		s.file = check.ReadGoEnvFile(s.t.Path(s.goenv))
	}
	if s.goroot != "" {
		s.rootFile = check.ReadGoEnvFile(s.t.Path(filepath.Join(s.goroot, "go.env")))
	}
	return s
}

// get is the value cmd/go uses: environment, GOENV file, GOROOT/go.env.
func (s *settings) get(key string) (string, string) {
	if v, ok := s.t.LookupEnv(key); ok && v != "" {
		return v, "environment"
	}
	if v, ok := s.file[key]; ok {
		return v, s.goenv
	}
	if v, ok := s.rootFile[key]; ok {
		return v, filepath.Join(s.goroot, "go.env")
	}
	return "", ""
}

func runConfig(ctx context.Context, env *check.Env) check.Result {
	s := loadSettings(env)
	ev := map[string]string{}
	var fs []check.Finding
	add := func(st check.Status, fix, format string, a ...any) {
		fs = append(fs, check.Finding{Status: st, Summary: fmt.Sprintf(format, a...), Fix: fix, Remedy: goenvRemedy(s.t, fix)})
	}
	source := func(key, v, from string) {
		if v != "" {
			ev[key] = v + " (from " + from + ")"
		}
	}

	// GO111MODULE: off means GOPATH mode, where nothing of a module is
	// found ("go: cannot find main module" and friends).
	mod, from := s.get("GO111MODULE")
	source("GO111MODULE", mod, from)
	switch mod {
	case "", "on", "auto":
	case "off":
		add(check.Fail, unsetFix("GO111MODULE", from, s.goenv),
			"GO111MODULE=off (from %s): the go command ignores go.mod files, so module builds fail with \"go: cannot find main module\" or resolve imports from GOPATH", from)
	default:
		add(check.Fail, unsetFix("GO111MODULE", from, s.goenv),
			"GO111MODULE=%q (from %s) is not on, off or auto: every go command fails", mod, from)
	}

	// GOFLAGS: the real value (the toolchain was resolved without it).
	goflags, from := s.get("GOFLAGS")
	if s.tc != nil && s.tc.Err == nil {
		goflags = s.tc.GOFLAGS
	}
	source("GOFLAGS", goflags, from)
	if goflags != "" {
		if bad := checkGOFLAGS(goflags); bad != "" {
			add(check.Fail, unsetFix("GOFLAGS", from, s.goenv)+", or write each flag as -flag or -flag=value",
				"GOFLAGS=%q: %s; every go command fails with \"go: parsing $GOFLAGS\"", goflags, bad)
		}
	}
	goflagsFrom := from

	// GOTOOLCHAIN.
	gotc, from := s.get("GOTOOLCHAIN")
	if s.tc != nil && s.tc.Err == nil {
		gotc = s.tc.GOTOOLCHAIN
	}
	source("GOTOOLCHAIN", gotc, from)
	if err := toolchain.ParseGOTOOLCHAIN(gotc); err != nil {
		fix := "go env -w GOTOOLCHAIN=auto (local and a version like go1.26.0+auto work too)"
		if from == "environment" {
			fix = "unset GOTOOLCHAIN (the environment overrides go env -w)"
		} else if from != "" && from != s.goenv {
			fix = "edit " + from + ": set GOTOOLCHAIN=auto"
		}
		add(check.Fail, fix,
			"%v (from %s): every go command fails", err, from)
	}

	// GOWORK: an explicit file that is missing, or a go.work above the
	// module that silently changes what builds.
	if s.tc != nil && s.tc.Err == nil {
		checkGOWORK(s, ev, add)
	}

	// The GOENV file.
	if s.goenv != "" {
		checkGoEnvFile(s, ev, add)
	}

	// GOROOT/go.env carries the defaults (GOPROXY, GOSUMDB, GOTOOLCHAIN).
	goenvRoot := filepath.Join(s.goroot, "go.env")
	// (Go 1.21 introduced it: an older root has none, and needs none.)
	if _, err := os.Stat(s.t.Path(goenvRoot)); err != nil && s.goroot != "" && s.tc.Since(check.GoEnvRelease) {
		add(check.Warn, "reinstall Go from <the release archive> (it ships "+goenvRoot+")",
			"%s is missing: GOPROXY, GOSUMDB and GOTOOLCHAIN lose their defaults", goenvRoot)
	}
	if s.tc != nil && s.tc.Err == nil && strings.Trim(s.tc.Get("GOPROXY"), " ,|") == "" {
		// cmd/go's modfetch.proxyList finds no entries in it.
		ev["GOPROXY"] = fmt.Sprintf("%q", s.tc.Get("GOPROXY"))
		add(check.Warn, "go env -w GOPROXY=<your module proxy>,direct (or go env -u GOPROXY for the default)",
			"GOPROXY is empty: every module download fails with \"GOPROXY list is not the empty string, but contains no entries\"")
	}

	// GOEXPERIMENT, checked against the experiments this GOROOT knows.
	if exp, from := s.get("GOEXPERIMENT"); exp != "" {
		source("GOEXPERIMENT", exp, from)
		if known, err := knownExperiments(s.t, s.goroot); err == nil {
			for f := range strings.SplitSeq(exp, ",") {
				name := strings.TrimPrefix(f, "no")
				if f == "" || f == "none" || known[name] {
					continue
				}
				add(check.Fail, unsetFix("GOEXPERIMENT", from, s.goenv),
					"GOEXPERIMENT=%s (from %s): unknown experiment %q for this Go: every go command fails with \"go: unknown GOEXPERIMENT %s\"", exp, from, name, name)
			}
		}
	}
	// Every other check runs its go commands with GOFLAGS cleared, so
	// that one bad setting is reported once; this one go command runs in
	// the environment the user's builds really get (GOFLAGS, the GOENV
	// file and all), so that no setting the go command rejects goes
	// unseen. Only GOTOOLCHAIN is kept local: a switch is a download,
	// which module.toolchain judges.
	if s.tc != nil && s.tc.Err == nil {
		if words, err := realEnvProbe(ctx, env); err != nil {
			ev["go list (real environment)"] = words
			// A finding above already names the cause (its own
			// message quotes what the go command says).
			if len(fs) == 0 {
				fix := "run `go list unsafe` in an empty directory to see the whole error, and correct the setting it names"
				if goflags != "" {
					fix = unsetFix("GOFLAGS", goflagsFrom, s.goenv) + ", or correct the flag the go command names"
				}
				add(check.Fail, fix, "the go command rejects the environment your builds get (GOFLAGS=%q): %s", goflags, words)
			}
		}
	}
	return check.Combine("GO111MODULE, GOFLAGS, GOWORK, GOTOOLCHAIN, GOEXPERIMENT and the GOENV file are sound", fs, ev)
}

// realEnvProbe runs `go list -find unsafe` (the cheapest package: the
// go command parses GOFLAGS before it loads anything) in an empty scratch directory with
// the target's own environment, and returns the go command's words when it
// fails. The directory keeps a go.mod of the working directory (which
// module.* checks judge) out of it.
func realEnvProbe(ctx context.Context, env *check.Env) (string, error) {
	sc, err := env.Target.NewScratch("", "gopatrol-realenv-")
	if err != nil {
		return "", nil // env.functional reports an unwritable TMPDIR
	}
	defer sc.Remove()
	in := *env.Target
	in.Dir = sc.Dir
	probe := &check.Env{Target: &in, Toolchain: env.Toolchain}
	out, err := probe.Go(ctx, []string{"GOTOOLCHAIN=local"}, "list", "-e", "-find", "-f", "{{.ImportPath}}", "unsafe")
	if err == nil || ctx.Err() != nil {
		return "", nil
	}
	var lines []string
	for l := range strings.Lines(string(out)) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "usage:") && !strings.HasPrefix(l, "Run 'go help") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return err.Error(), err
	}
	return check.FirstLines(strings.Join(lines, "\n"), 2, " | "), err
}

// goenvRemedy is what a printed `go env -u KEY` or `go env -w KEY=VALUE`
// does, for check --fix: remove or write the KEY line of the GOENV file,
// as the build user would ($HOME is theirs). Other fixes need a person.
func goenvRemedy(t *check.Target, fix string) *check.Remedy {
	goenv := toolchain.DefaultGOENV(t)
	if goenv == "" || goenv == "off" {
		return nil
	}
	first, _, _ := strings.Cut(fix, ", or ")
	if rest, ok := strings.CutPrefix(first, "go env -u "); ok {
		return &check.Remedy{Kind: check.SetGoEnv, Root: goenv, Key: strings.TrimSpace(rest), User: t.UserName()}
	}
	rest, ok := strings.CutPrefix(first, "go env -w ")
	if !ok || strings.ContainsAny(rest, " \t<>") {
		return nil
	}
	key, value, ok := strings.Cut(rest, "=")
	if !ok || value == "" {
		return nil
	}
	home := t.Getenv("HOME")
	if t.AsOther() {
		home = t.User.Home
	}
	value = os.Expand(value, func(k string) string {
		if k == "HOME" {
			return home
		}
		return t.Getenv(k)
	})
	return &check.Remedy{Kind: check.SetGoEnv, Root: goenv, Key: key, Value: value, User: t.UserName()}
}

// unsetFix tells how to remove a setting from where it came from.
func unsetFix(key, from, goenv string) string {
	if from != "" && from == goenv {
		return "go env -u " + key
	}
	if from != "" && from != "environment" {
		return "remove the " + key + " line from " + from
	}
	return "unset " + key
}

// checkGOFLAGS applies cmd/go's GOFLAGS rules (base.InitGOFLAGS): words
// split like cmd/internal/quoted.Split, each of the form -flag, --flag,
// -flag=value. It returns what is wrong, quoting the bad word, or "".
func checkGOFLAGS(s string) string {
	words, err := splitQuoted(s)
	if err != nil {
		return err.Error()
	}
	for _, f := range words {
		if !strings.HasPrefix(f, "-") || f == "-" || f == "--" || strings.HasPrefix(f, "---") || strings.HasPrefix(f, "-=") || strings.HasPrefix(f, "--=") {
			return fmt.Sprintf("non-flag %q (each word must be -flag or -flag=value; use -flag=value, not -flag value)", f)
		}
	}
	return ""
}

// splitQuoted is cmd/internal/quoted.Split: space-separated words, where a
// word that starts with ' or " runs to the matching quote.
func splitQuoted(s string) ([]string, error) {
	var words []string
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \t\n\r")
		if s == "" {
			break
		}
		if q := s[0]; q == '\'' || q == '"' {
			i := strings.IndexByte(s[1:], q)
			if i < 0 {
				return nil, fmt.Errorf("unterminated %c string", q)
			}
			words = append(words, s[1:1+i])
			s = s[2+i:]
			continue
		}
		i := strings.IndexAny(s, " \t\n\r")
		if i < 0 {
			i = len(s)
		}
		words = append(words, s[:i])
		s = s[i:]
	}
	return words, nil
}

func checkGOWORK(s *settings, ev map[string]string, add func(check.Status, string, string, ...any)) {
	explicit, from := s.get("GOWORK")
	work := s.tc.Get("GOWORK")
	switch {
	case explicit == "off":
		return
	case explicit != "" && explicit != "auto":
		ev["GOWORK"] = explicit + " (from " + from + ")"
		if _, err := os.Stat(s.t.Path(explicit)); err != nil {
			add(check.Warn, unsetFix("GOWORK", from, s.goenv)+", or go work init to create it",
				"GOWORK=%s (from %s) does not exist: go commands fail with \"go: no such file\" for it", explicit, from)
		}
	case work != "":
		ev["GOWORK"] = work + " (found above " + s.t.Dir + ")"
		gomod := s.tc.Get("GOMOD")
		modDir := filepath.Dir(gomod)
		if gomod != "" && gomod != os.DevNull && filepath.Dir(work) != modDir {
			add(check.Warn, "export GOWORK=off (for this module), or go work use "+modDir+" (to add it to the workspace on purpose)",
				"a workspace file %s above the module %s is in effect: it decides the versions that build here", work, gomod)
		}
	}
}

// checkGoEnvFile reports lines the go command silently ignores (it skips
// any line that has no = or does not start with A-Z) and passwords in a
// file that others can read.
func checkGoEnvFile(s *settings, ev map[string]string, add func(check.Status, string, string, ...any)) {
	f, err := os.Open(s.t.Path(s.goenv))
	if err != nil {
		return // no file: nothing configured there
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return
	}
	ev["GOENV"] = fmt.Sprintf("%s (mode %04o)", s.goenv, fi.Mode().Perm())
	var bad, creds []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexByte(line, '='); i < 0 || line[0] < 'A' || line[0] > 'Z' {
			bad = append(bad, fmt.Sprintf("line %d: %q", n, line))
			continue
		}
		key, val, _ := strings.Cut(line, "=")
		if check.HasURLPassword(val) && fi.Mode().Perm()&0o044 != 0 {
			creds = append(creds, fmt.Sprintf("line %d: %s=%s", n, key, check.RedactURLs(val)))
		}
	}
	if len(bad) > 0 {
		ev["GOENV.ignored"] = strings.Join(bad, "; ")
		add(check.Warn, "correct or delete <the lines listed> in "+s.goenv+" (go env -w KEY=value writes valid ones)",
			"%s has lines the go command silently ignores: %s", s.goenv, strings.Join(bad, "; "))
	}
	if len(creds) > 0 {
		slices.Sort(creds)
		ev["GOENV.credentials"] = strings.Join(creds, "; ")
		add(check.Warn, "chmod 600 "+s.goenv+" (or move the credentials to .netrc / GOAUTH)",
			"%s (mode %04o) holds credentials that other users can read: %s", s.goenv, fi.Mode().Perm(), strings.Join(creds, "; "))
	}
}

// knownExperiments reads the experiment names of this GOROOT from
// internal/goexperiment (the fields of Flags, lowercased, as buildcfg
// does), plus the "regabi" alias.
func knownExperiments(t *check.Target, goroot string) (map[string]bool, error) {
	f, err := os.Open(t.Path(filepath.Join(goroot, "src", "internal", "goexperiment", "flags.go")))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	known := map[string]bool{"regabi": true}
	field := regexp.MustCompile(`^\s+([A-Z][A-Za-z0-9]*)\s+bool\b`)
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "type Flags struct"):
			in = true
		case in && line == "}":
			in = false
		case in:
			if m := field.FindStringSubmatch(line); m != nil {
				known[strings.ToLower(m[1])] = true
			}
		}
	}
	if len(known) < 2 {
		return nil, fmt.Errorf("no experiments found in %s", f.Name())
	}
	return known, nil
}
