package patrol

import (
	"errors"
	"github.com/gopatrol/gopatrol/internal/testgate"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The source's own example, as chapter 5 prints it (indented as YAML needs).
const sourceExample = `- name: "mysql-replication-delay"
  type: "sql"
  target: "mysql-primary"
  query: "SELECT ROUND(SECONDS_BEHIND_MASTER, 0) FROM information_schema.REPLICA_HOST_STATUS;"
  threshold: "gt(60)"
  notify: ["#db-ops", "sms:138****1234"]
`

func writeRules(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSourceExampleParses(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "db.yaml", sourceExample)
	set, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules) != 1 {
		t.Fatalf("rules = %d, want 1", len(set.Rules))
	}
	r := set.Rules[0]
	if r.Name != "mysql-replication-delay" || r.Type != TypeSQL || r.Target != "mysql-primary" ||
		!strings.HasPrefix(r.Query, "SELECT ROUND") || r.Threshold != "gt(60)" ||
		len(r.Notify) != 2 || r.Notify[0] != "#db-ops" || r.Notify[1] != "sms:138****1234" {
		t.Errorf("rule = %+v", r)
	}
	if r.Stage != StageActive || r.For != 1 || r.Weight != DefaultWeight || r.CanaryPercent != DefaultCanaryPercent {
		t.Errorf("defaults: %+v", r)
	}
	if !r.threshold.Breached(61) || r.threshold.Breached(60) {
		t.Errorf("gt(60) judged wrong")
	}
	if len(set.Digest) != 64 {
		t.Errorf("digest %q", set.Digest)
	}
}

func TestFullRuleParses(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "a.yaml", `
- name: gocache-eacces
  type: metric
  query: 'increase(gopatrol.file_access.failures{error.type="EACCES",gopatrol.file.class="gocache"}[1m])'
  threshold: ewma(alpha=0.2, k=4)
  every: 30s
  weight: 0.35
  labels: {service: build, region: eu-west-1}
  for: 3
  stage: canary
  canary_percent: 10
  baseline: {warmup: 20}
  timeout: 2s
- name: nightly
  type: check
  target: "build.*"
  at: "02:00"
`)
	set, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := set.Rules[0]
	if r.Every != 30*time.Second || r.Weight != 0.35 || r.Labels["service"] != "build" || r.For != 3 ||
		r.Stage != StageCanary || r.CanaryPercent != 10 || r.Baseline.Warmup != 20 || r.Timeout != 2*time.Second ||
		r.threshold.Alpha != 0.2 || r.threshold.K != 4 {
		t.Errorf("rule = %+v", r)
	}
	if n := set.Rules[1]; n.At != "02:00" || n.Threshold != "ge(2)" || n.Line != 14 {
		t.Errorf("nightly = %+v", n)
	}
}

func TestProblemsNamePlace(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string // substrings of the error, in order
	}{
		{"bad threshold", "- name: x\n  type: http\n  target: http://127.0.0.1/\n  threshold: gt(sixty)\n",
			[]string{"bad.yaml:4", `rule "x"`, `field "threshold"`, `"sixty" is not a number`}},
		{"unknown field", "- name: x\n  type: dns\n  target: a.example\n  thresold: lt(1)\n",
			[]string{"bad.yaml:4", `field "thresold"`, "unknown field"}},
		{"unknown type", "- name: x\n  type: snmp\n", []string{"bad.yaml:2", `field "type"`, `"snmp" is not a rule type`}},
		{"missing type", "- name: x\n  target: y\n", []string{"bad.yaml:1", `field "type"`, "missing"}},
		{"missing target", "- name: x\n  type: tls\n", []string{`field "target"`, "host:port"}},
		{"every and at", "- name: x\n  type: check\n  target: go.*\n  every: 1m\n  at: \"02:00\"\n", []string{"bad.yaml:5", `field "at"`, "not both"}},
		{"bad every", "- name: x\n  type: check\n  target: go.*\n  every: soon\n", []string{"bad.yaml:4", `field "every"`}},
		{"bad stage", "- name: x\n  type: check\n  target: go.*\n  stage: beta\n", []string{`field "stage"`, "shadow, canary or active"}},
		{"bad canary", "- name: x\n  type: check\n  target: go.*\n  canary_percent: 101\n", []string{`field "canary_percent"`}},
		{"bad metric", "- name: x\n  type: metric\n  query: rate(x)\n", []string{"bad.yaml:3", `field "query"`, "needs a window"}},
		{"bad measure", "- name: x\n  type: http\n  target: http://h/\n  query: body\n", []string{`field "query"`, "up, status, latency"}},
		{"not a list", "name: x\ntype: check\n", []string{"bad.yaml:1", "YAML list"}},
		{"not yaml", "- name: x\n  type: [\n", []string{"bad.yaml:", "not valid YAML"}},
		// The source's example as the text shows it, indentation lost.
		{"flush left", "- name: \"mysql-replication-delay\"\ntype: \"sql\"\ntarget: \"mysql-primary\"\n",
			[]string{"bad.yaml:2", `field "type"`, "indent a rule's fields"}},
		{"bad notify", "- name: x\n  type: check\n  target: go.*\n  notify: [\"email:ops@example.org\"]\n",
			[]string{"bad.yaml:4", `field "notify"`, `"email:ops@example.org"`}},
		{"ewma arg", "- name: x\n  type: dns\n  target: a\n  threshold: ewma(beta=1)\n", []string{`no argument "beta"`}},
		{"twice", "- name: x\n  type: dns\n  type: dns\n  target: a\n", []string{"bad.yaml:3", "given twice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeRules(t, dir, "bad.yaml", tt.body)
			_, err := LoadDir(dir)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("err = %v, want Problems", err)
			}
			msg := err.Error()
			at := 0
			for _, w := range tt.want {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Fatalf("error %q lacks %q (after offset %d)", msg, w, at)
				}
				at += i
			}
		})
	}
}

func TestDuplicateNamesAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "a.yaml", "- name: x\n  type: check\n  target: go.*\n")
	writeRules(t, dir, "b.yaml", "\n- name: x\n  type: check\n  target: go.*\n")
	_, err := LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), "b.yaml:2") || !strings.Contains(err.Error(), "first defined at") {
		t.Fatalf("err = %v", err)
	}
}

func TestRevision(t *testing.T) {
	t.Setenv(RevisionEnv, "")
	dir := t.TempDir()
	if got := Revision(dir); got != "" {
		t.Fatalf("revision of a bare dir = %q", got)
	}
	t.Setenv(RevisionEnv, "env-rev")
	if got := Revision(dir); got != "env-rev" {
		t.Fatalf("revision from env = %q", got)
	}
	writeRules(t, dir, "REVISION", "file-rev\n")
	if got := Revision(dir); got != "file-rev" {
		t.Fatalf("revision from file = %q", got)
	}
	git := testgate.Tool(t, "git", "git")
	repo := t.TempDir()
	sub := filepath.Join(repo, "rules")
	os.Mkdir(sub, 0o755)
	writeRules(t, sub, "a.yaml", sourceExample)
	run := func(args ...string) string {
		cmd := exec.Command(git, args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q")
	run("add", ".")
	run("commit", "-qm", "rules")
	head := run("rev-parse", "HEAD")
	if got := Revision(sub); got != head {
		t.Fatalf("revision = %q, want HEAD %q", got, head)
	}
	run("pack-refs", "--all")
	if got := Revision(sub); got != head {
		t.Fatalf("revision from packed-refs = %q, want %q", got, head)
	}
}
