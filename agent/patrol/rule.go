package patrol

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Stage is where a rule is in its gray release.
type Stage string

const (
	// StageShadow evaluates and records but never notifies; each firing
	// counts as a candidate false positive.
	StageShadow Stage = "shadow"
	// StageCanary is live on CanaryPercent of the nodes (a stable hash of
	// host identity and rule name) and shadow on the others.
	StageCanary Stage = "canary"
	// StageActive is live everywhere.
	StageActive Stage = "active"
)

// DefaultCanaryPercent is the share of nodes a canary rule is live on when
// the rule does not say (the source's 5% gray group).
const DefaultCanaryPercent = 5

// DefaultWeight is a rule's weight in the health score when it sets none:
// one rule breaching for an hour alone takes the score under 70.
const DefaultWeight = 6.0

// DefaultWarmup is the number of samples an ewma baseline needs before it
// can breach.
const DefaultWarmup = 10

// Rule types.
const (
	TypeCheck  = "check"
	TypeMetric = "metric"
	TypePromQL = "promql"
	TypeHTTP   = "http"
	TypeDNS    = "dns"
	TypeTLS    = "tls"
	TypeSQL    = "sql"
	TypeExec   = "exec"
)

// Types lists every rule type.
var Types = []string{TypeCheck, TypeMetric, TypePromQL, TypeHTTP, TypeDNS, TypeTLS, TypeSQL, TypeExec}

// Rule is one patrol rule as written in a rules file, plus where it was.
type Rule struct {
	Name      string            `json:"name"`
	Type      string            `json:"type"`
	Target    string            `json:"target,omitempty"`
	Query     string            `json:"query,omitempty"`
	Threshold string            `json:"threshold"`
	Notify    []string          `json:"notify,omitempty"`
	Every     time.Duration     `json:"every,omitempty"`
	At        string            `json:"at,omitempty"` // daily "HH:MM", local time
	Weight    float64           `json:"weight"`
	Labels    map[string]string `json:"labels,omitempty"`
	// For is the number of consecutive breaching evaluations before the
	// rule fires (1 when unset).
	For           int           `json:"for"`
	Stage         Stage         `json:"stage"`
	CanaryPercent float64       `json:"canary_percent"`
	Baseline      Baseline      `json:"baseline"`
	Timeout       time.Duration `json:"timeout,omitempty"`
	// Remediate names the doctor check whose fix the agent applies when
	// the rule fires (action.go); Webhook is a URL the agent POSTs the
	// firing to. Both run once per episode, only for an active rule on a
	// node that opted in.
	Remediate string `json:"remediate,omitempty"`
	Webhook   string `json:"webhook,omitempty"`
	// Scope says whose check results a check rule judges: the agent's
	// own environment (host), the Go environments builds use
	// (environments, docs/environments.md), or both (all, the default).
	Scope Scope `json:"scope,omitempty"`

	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`

	threshold Threshold
	atHour    int
	atMinute  int
}

// Scope is whose check results a check rule judges.
type Scope string

const (
	// ScopeHost judges the agent's own patrol (the environment it is
	// pointed at: its own, or the host root).
	ScopeHost Scope = "host"
	// ScopeEnvironments judges the latest patrol of each Go environment
	// builds use, each as its own series labelled LabelEnvironment.
	ScopeEnvironments Scope = "environments"
	// ScopeAll is both: the default of a check rule.
	ScopeAll Scope = "all"
)

// Scopes lists every scope.
var Scopes = []Scope{ScopeHost, ScopeEnvironments, ScopeAll}

// Host says the rule judges the agent's own patrol.
func (s Scope) Host() bool { return s == ScopeHost || s == ScopeAll || s == "" }

// Environments says the rule judges the environments' patrols.
func (s Scope) Environments() bool { return s == ScopeEnvironments || s == ScopeAll || s == "" }

// Baseline tunes an ewma threshold.
type Baseline struct {
	// Warmup is the number of samples before the baseline can breach.
	Warmup int `json:"warmup"`
}

// Problem is one thing wrong with a rule set, placed as exactly as the
// YAML allows.
type Problem struct {
	File   string
	Line   int
	Rule   string
	Field  string
	Detail string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	if p.Rule != "" {
		fmt.Fprintf(&b, ": rule %q", p.Rule)
	}
	if p.Field != "" {
		fmt.Fprintf(&b, ": field %q", p.Field)
	}
	b.WriteString(": ")
	b.WriteString(p.Detail)
	return b.String()
}

// Problems is the error of a rule set that does not load: every problem
// found, in file and line order.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// RuleSet is a loaded, valid set of rules.
type RuleSet struct {
	Dir      string
	Rules    []Rule
	Digest   string // sha256 over the files' names and contents
	Revision string // git commit, REVISION file or GOPATROL_RULES_REVISION
}

// RevisionEnv names the variable a GitOps tool can set to the revision of
// the rules it wrote, when the directory has neither a git checkout nor a
// REVISION file.
const RevisionEnv = "GOPATROL_RULES_REVISION"

// LoadDir reads every *.yaml and *.yml file of dir (not recursively), in
// name order. A set with problems returns Problems, all of them at once.
func LoadDir(dir string) (*RuleSet, error) {
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, fmt.Errorf("rules directory %s: %w", dir, err)
		}
		files = append(files, m...)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("rules directory: %w", err)
	}
	sort.Strings(files)
	h := sha256.New()
	var rules []Rule
	var probs Problems
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("rules file: %w", err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.Base(f), len(data))
		h.Write(data)
		rs, ps := ParseRules(f, data)
		rules = append(rules, rs...)
		probs = append(probs, ps...)
	}
	probs = append(probs, duplicates(rules)...)
	if len(probs) > 0 {
		return nil, probs
	}
	return &RuleSet{Dir: dir, Rules: rules, Digest: hex.EncodeToString(h.Sum(nil)), Revision: Revision(dir)}, nil
}

func duplicates(rules []Rule) Problems {
	var ps Problems
	seen := map[string]Rule{}
	for _, r := range rules {
		if first, ok := seen[r.Name]; ok {
			ps = append(ps, Problem{File: r.File, Line: r.Line, Rule: r.Name, Field: "name",
				Detail: fmt.Sprintf("duplicate rule name, first defined at %s:%d; rename one", first.File, first.Line)})
			continue
		}
		seen[r.Name] = r
	}
	return ps
}

var fields = []string{"name", "type", "target", "query", "threshold", "notify", "every", "at", "weight",
	"labels", "for", "stage", "canary_percent", "baseline", "timeout", "remediate", "webhook", "scope"}

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*$`)
	labelRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)
	atRE    = regexp.MustCompile(`^([01]?[0-9]|2[0-3]):([0-5][0-9])$`)
	// checkIDRE is the shape of a doctor check ID (gocache.writable).
	checkIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)+$`)
)

// ParseRules parses one rules file: a YAML list of rules. The problems
// name file, line, rule and field.
func ParseRules(file string, data []byte) ([]Rule, Problems) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		if p, ok := unindented(file, data); ok {
			return nil, Problems{p}
		}
		return nil, Problems{{File: file, Line: yamlErrLine(err), Detail: "not valid YAML: " + err.Error()}}
	}
	if len(doc.Content) == 0 || len(bytes.TrimSpace(data)) == 0 {
		return nil, nil // an empty file holds no rules
	}
	root := doc.Content[0]
	if root.Kind != yaml.SequenceNode {
		return nil, Problems{{File: file, Line: root.Line, Detail: "a rules file is a YAML list of rules (each starting with \"- name:\")"}}
	}
	var rules []Rule
	var probs Problems
	for _, n := range root.Content {
		r, ps := parseRule(file, n)
		probs = append(probs, ps...)
		if len(ps) == 0 {
			rules = append(rules, r)
		}
	}
	return rules, probs
}

var (
	yamlLineRE  = regexp.MustCompile(`line (\d+)`)
	topFieldRE  = regexp.MustCompile(`^([a-z_]+):`)
	listStartRE = regexp.MustCompile(`^-\s+[a-z_]+:`)
)

// unindented explains the commonest way a rules file is not YAML: a rule's
// fields written flush left under its "- name:" line (as text copied from
// a document loses its indentation), which YAML reads as a new mapping.
func unindented(file string, data []byte) (Problem, bool) {
	inItem := false
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case listStartRE.MatchString(line):
			inItem = true
		case inItem && topFieldRE.MatchString(line):
			f := topFieldRE.FindStringSubmatch(line)[1]
			return Problem{File: file, Line: i + 1, Field: f, Detail: "not valid YAML: the field starts at column 1, outside the rule above; indent a rule's fields to line up with its name (2 spaces after \"- \")"}, true
		case strings.TrimSpace(line) != "" && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "#"):
			inItem = false
		}
	}
	return Problem{}, false
}

func yamlErrLine(err error) int {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func parseRule(file string, n *yaml.Node) (Rule, Problems) {
	r := Rule{File: file, Line: n.Line, Stage: StageActive, Weight: DefaultWeight, For: 1,
		CanaryPercent: DefaultCanaryPercent, Baseline: Baseline{Warmup: DefaultWarmup}}
	if n.Kind != yaml.MappingNode {
		return r, Problems{{File: file, Line: n.Line, Detail: "a rule is a mapping of fields (name, type, threshold, ...)"}}
	}
	// The name first, so every other problem can say which rule it is in.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" {
			r.Name = n.Content[i+1].Value
		}
	}
	var probs Problems
	bad := func(at *yaml.Node, field, format string, a ...any) {
		probs = append(probs, Problem{File: file, Line: at.Line, Rule: r.Name, Field: field, Detail: fmt.Sprintf(format, a...)})
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			bad(k, k.Value, "given twice")
			continue
		}
		seen[k.Value] = true
		if !slices.Contains(fields, k.Value) {
			bad(k, k.Value, "unknown field; a rule has %s", strings.Join(fields, ", "))
			continue
		}
		if err := decodeField(&r, k.Value, v); err != nil {
			bad(v, k.Value, "%v", err)
		}
	}
	for _, f := range []string{"name", "type"} {
		if !seen[f] {
			bad(n, f, "missing; every rule needs a name and a type")
		}
	}
	if len(probs) > 0 {
		return r, probs
	}
	// Checks across fields.
	field := func(name string) *yaml.Node {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == name {
				return n.Content[i+1]
			}
		}
		return n
	}
	if seen["every"] && seen["at"] {
		bad(field("at"), "at", "give either every (an interval) or at (a daily time), not both")
	}
	if !seen["threshold"] {
		r.Threshold = defaultThreshold[r.Type]
		if r.Type == TypeTLS && r.Query == "up" {
			r.Threshold = "lt(1)"
		}
	}
	th, err := ParseThreshold(r.Threshold)
	if r.Threshold == "" {
		bad(n, "threshold", "missing; a %s rule has no default threshold: give one such as gt(60) or ewma(alpha=0.3,k=3)", r.Type)
	} else if err != nil {
		bad(field("threshold"), "threshold", "%v", err)
	} else {
		r.threshold = th
	}
	if needsTarget[r.Type] && r.Target == "" {
		bad(n, "target", "missing; a %s rule needs a target (%s)", r.Type, targetHelp[r.Type])
	}
	if needsQuery[r.Type] && r.Query == "" {
		bad(n, "query", "missing; a %s rule needs a query", r.Type)
	}
	if r.Type == TypeMetric {
		if _, err := parseMetricQuery(r.Query); err != nil {
			bad(field("query"), "query", "%v", err)
		}
	}
	if q, ok := queries[r.Type]; ok && r.Query != "" && !slices.Contains(q, r.Query) {
		bad(field("query"), "query", "%q: a %s rule measures one of %s", r.Query, r.Type, strings.Join(q, ", "))
	}
	if r.Type == TypeCheck {
		if _, err := filepath.Match(r.Target, ""); err != nil {
			bad(field("target"), "target", "%q is not a valid glob: %v", r.Target, err)
		}
		if r.Scope == "" {
			r.Scope = ScopeAll
		}
	} else if seen["scope"] {
		bad(field("scope"), "scope", "only check rules have a scope (the environments are patrolled with the doctor's checks); remove it from this %s rule", r.Type)
	}
	if _, ok := r.Labels[LabelEnvironment]; ok {
		bad(field("labels"), "labels", "%q is the label the engine gives the results of an environment; choose another name", LabelEnvironment)
	}
	return r, probs
}

// What each type needs, and the threshold it gets when it sets none.
var (
	needsTarget = map[string]bool{TypeCheck: true, TypeHTTP: true, TypeDNS: true, TypeTLS: true, TypeExec: true}
	needsQuery  = map[string]bool{TypeMetric: true, TypePromQL: true, TypeSQL: true}
	targetHelp  = map[string]string{TypeCheck: "a check ID or a glob of IDs, e.g. gocache.*",
		TypeHTTP: "a URL", TypeDNS: "a host name", TypeTLS: "host:port", TypeExec: "a command line"}
	// queries lists what the local probe types can measure; the first is
	// the default.
	queries = map[string][]string{
		TypeHTTP: {"up", "status", "latency"},
		TypeDNS:  {"up", "latency", "addresses"},
		TypeTLS:  {"days", "up"},
	}
	defaultThreshold = map[string]string{
		TypeCheck: "ge(2)", TypeHTTP: "lt(1)", TypeDNS: "lt(1)", TypeTLS: "lt(14)", TypeExec: "ge(1)",
	}
)

func decodeField(r *Rule, key string, v *yaml.Node) error {
	scalar := func() (string, error) {
		if v.Kind != yaml.ScalarNode {
			return "", fmt.Errorf("want a single value, got a %s", kindName(v.Kind))
		}
		return v.Value, nil
	}
	s, serr := scalar()
	switch key {
	case "name":
		if serr != nil {
			return serr
		}
		if !nameRE.MatchString(s) {
			return fmt.Errorf("%q: use letters, digits and _ . : - (starting with a letter or digit)", s)
		}
	case "type":
		if serr != nil {
			return serr
		}
		if !slices.Contains(Types, s) {
			return fmt.Errorf("%q is not a rule type; use one of %s", s, strings.Join(Types, ", "))
		}
		r.Type = s
	case "target":
		r.Target = s
		return serr
	case "query":
		r.Query = s
		return serr
	case "threshold":
		r.Threshold = s
		return serr
	case "notify":
		if v.Kind != yaml.SequenceNode {
			return fmt.Errorf("want a list such as [\"#db-ops\", \"alertmanager\"]")
		}
		for _, e := range v.Content {
			if e.Kind != yaml.ScalarNode || strings.TrimSpace(e.Value) == "" {
				return fmt.Errorf("line %d: each notify entry is a non-empty string (slack:#channel, webhook:NAME, jira:PROJECT, alertmanager, #channel, sms:NUMBER)", e.Line)
			}
			if err := validNotify(e.Value); err != nil {
				return err
			}
			r.Notify = append(r.Notify, e.Value)
		}
	case "remediate":
		if serr != nil {
			return serr
		}
		if !checkIDRE.MatchString(s) {
			return fmt.Errorf("%q: want the ID of the doctor check whose fix to apply, such as gocache.writable", s)
		}
		r.Remediate = s
	case "webhook":
		if serr != nil {
			return serr
		}
		if err := validWebhook(s); err != nil {
			return err
		}
		r.Webhook = s
	case "every", "timeout":
		if serr != nil {
			return serr
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q: want a positive duration such as 30s or 5m", s)
		}
		if key == "every" {
			r.Every = d
		} else {
			r.Timeout = d
		}
	case "at":
		if serr != nil {
			return serr
		}
		m := atRE.FindStringSubmatch(s)
		if m == nil {
			return fmt.Errorf("%q: want a daily time HH:MM such as 02:00", s)
		}
		r.At = s
		r.atHour, _ = strconv.Atoi(m[1])
		r.atMinute, _ = strconv.Atoi(m[2])
	case "weight", "canary_percent":
		if serr != nil {
			return serr
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || (key == "canary_percent" && f > 100) {
			return fmt.Errorf("%q: want a number from 0%s", s, map[bool]string{true: " to 100", false: ""}[key == "canary_percent"])
		}
		if key == "weight" {
			r.Weight = f
		} else {
			r.CanaryPercent = f
		}
	case "for":
		if serr != nil {
			return serr
		}
		i, err := strconv.Atoi(s)
		if err != nil || i < 1 {
			return fmt.Errorf("%q: want the number of consecutive breaching evaluations before firing, 1 or more", s)
		}
		r.For = i
	case "stage":
		if serr != nil {
			return serr
		}
		st := Stage(s)
		if st != StageShadow && st != StageCanary && st != StageActive {
			return fmt.Errorf("%q: want shadow, canary or active", s)
		}
		r.Stage = st
	case "scope":
		if serr != nil {
			return serr
		}
		sc := Scope(s)
		if !slices.Contains(Scopes, sc) {
			return fmt.Errorf("%q: want host (the agent's own environment), environments (the Go environments builds use) or all (both, the default)", s)
		}
		r.Scope = sc
	case "labels":
		if v.Kind != yaml.MappingNode {
			return fmt.Errorf("want a mapping such as {service: build, region: eu-west-1}")
		}
		r.Labels = map[string]string{}
		for i := 0; i+1 < len(v.Content); i += 2 {
			lk, lv := v.Content[i], v.Content[i+1]
			if !labelRE.MatchString(lk.Value) || lv.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: label %q: names are letters, digits, _ and . and values are strings", lk.Line, lk.Value)
			}
			r.Labels[lk.Value] = lv.Value
		}
	case "baseline":
		if v.Kind != yaml.MappingNode {
			return fmt.Errorf("want a mapping such as {warmup: 20}")
		}
		for i := 0; i+1 < len(v.Content); i += 2 {
			bk, bv := v.Content[i], v.Content[i+1]
			if bk.Value != "warmup" {
				return fmt.Errorf("line %d: %q: the baseline has only warmup (samples before it can breach)", bk.Line, bk.Value)
			}
			n, err := strconv.Atoi(bv.Value)
			if err != nil || n < 1 {
				return fmt.Errorf("line %d: warmup %q: want a number of samples, 1 or more", bv.Line, bv.Value)
			}
			r.Baseline.Warmup = n
		}
	}
	return nil
}

// notifySchemes are the notify entry forms agent/notify knows: scheme:value,
// or alertmanager alone, or the source's #channel.
var notifySchemes = []string{"alertmanager", "slack", "webhook", "jira", "sms"}

func validNotify(s string) error {
	if s == "alertmanager" || (strings.HasPrefix(s, "#") && len(s) > 1) {
		return nil
	}
	scheme, val, ok := strings.Cut(s, ":")
	if !ok || val == "" || !slices.Contains(notifySchemes, scheme) {
		return fmt.Errorf("%q: a notify entry is alertmanager, #channel, slack:#channel, webhook:NAME, jira:PROJECT or sms:NUMBER", s)
	}
	return nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	case yaml.AliasNode:
		return "alias"
	}
	return "value"
}

// Revision says which version of the rules dir is loaded: the commit of
// its git checkout (HEAD read from the .git directory, no git needed), else
// the first line of a REVISION file in it, else GOPATROL_RULES_REVISION.
func Revision(dir string) string {
	if rev := gitHead(dir); rev != "" {
		return rev
	}
	if b, err := os.ReadFile(filepath.Join(dir, "REVISION")); err == nil {
		if line, _, _ := strings.Cut(string(b), "\n"); strings.TrimSpace(line) != "" {
			return strings.TrimSpace(line)
		}
	}
	return os.Getenv(RevisionEnv)
}

func gitHead(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	for d := abs; ; d = filepath.Dir(d) {
		gitDir := filepath.Join(d, ".git")
		if fi, err := os.Stat(gitDir); err == nil {
			if !fi.IsDir() { // a worktree: "gitdir: PATH"
				b, err := os.ReadFile(gitDir)
				if err != nil {
					return ""
				}
				p := strings.TrimSpace(strings.TrimPrefix(string(b), "gitdir:"))
				if !filepath.IsAbs(p) {
					p = filepath.Join(d, p)
				}
				gitDir = p
			}
			return resolveHead(gitDir)
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

func resolveHead(gitDir string) string {
	b, err := os.ReadFile(filepath.Join(gitDir, "HEAD"))
	if err != nil {
		return ""
	}
	head := strings.TrimSpace(string(b))
	ref, ok := strings.CutPrefix(head, "ref: ")
	if !ok {
		return head // detached
	}
	// Loose refs live in the worktree's git dir or in the common dir.
	dirs := []string{gitDir}
	if c, err := os.ReadFile(filepath.Join(gitDir, "commondir")); err == nil {
		cd := strings.TrimSpace(string(c))
		if !filepath.IsAbs(cd) {
			cd = filepath.Join(gitDir, cd)
		}
		dirs = append(dirs, cd)
	}
	for _, d := range dirs {
		if b, err := os.ReadFile(filepath.Join(d, ref)); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "packed-refs"))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if id, name, ok := strings.Cut(line, " "); ok && name == ref {
				return id
			}
		}
	}
	return ""
}
