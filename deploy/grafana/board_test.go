package grafana

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/metricdef"
)

const committed = "gopatrol-health.json"

// The committed JSON is what Board builds today: a change to the board's
// code, the catalogue or the SDK shows here until `make generate` runs.
func TestBoardUpToDate(t *testing.T) {
	want, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("deploy/grafana/%s is stale: run `make generate` (or `cd deploy/grafana && go generate`) and commit it", committed)
	}
}

// vocabulary is what a query may name: the catalogue's metrics as the
// exporter names them (with a histogram's series), and the labels its
// attributes and the board's variables become.
func vocabulary(t *testing.T) (metrics, labels map[string]bool) {
	t.Helper()
	names, err := PromNames()
	if err != nil {
		t.Fatal(err)
	}
	metrics, labels = map[string]bool{}, map[string]bool{"le": true}
	for _, s := range metricdef.Catalogue {
		n := names[s.Name]
		metrics[n] = true
		if s.Kind == metricdef.KindHistogram {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				metrics[n+suf] = true
			}
		}
		for _, a := range s.Attributes {
			labels[Label(a)] = true
		}
	}
	for _, v := range Variables {
		labels[Label(v)] = true
	}
	return metrics, labels
}

var (
	// A metric: an identifier before a selector or a range, or the first
	// argument of label_values.
	metricRef = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]|label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)
	// A label: a matcher's left side, a by/without list, label_values'
	// second argument.
	matcher   = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"`)
	grouping  = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	valuesArg = regexp.MustCompile(`label_values\([^,]*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
	legendRef = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

// vet returns what expr (PromQL, or a legend format) names outside the
// vocabulary.
func vet(expr string, metrics, labels map[string]bool) []string {
	var bad []string
	if strings.Contains(expr, "{{") {
		for _, m := range legendRef.FindAllStringSubmatch(expr, -1) {
			if !labels[m[1]] {
				bad = append(bad, "label "+m[1])
			}
		}
		return bad
	}
	for _, m := range metricRef.FindAllStringSubmatch(expr, -1) {
		name := m[1] + m[2]
		if name != "" && !metrics[name] {
			bad = append(bad, "metric "+name)
		}
	}
	var ls []string
	for _, m := range matcher.FindAllStringSubmatch(expr, -1) {
		ls = append(ls, m[1])
	}
	for _, m := range grouping.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			ls = append(ls, strings.TrimSpace(l))
		}
	}
	for _, m := range valuesArg.FindAllStringSubmatch(expr, -1) {
		ls = append(ls, m[1])
	}
	for _, l := range ls {
		if !labels[l] {
			bad = append(bad, "label "+l)
		}
	}
	return bad
}

func TestVetCatchesStrangers(t *testing.T) {
	metrics, labels := vocabulary(t)
	for _, c := range []struct {
		expr string
		bad  []string
	}{
		{`gopatrol_health_score_ratio{k8s_node_name=~"$k8s_node_name"}`, nil},
		{`sum by (le, gopatrol_go_subcommand) (rate(gopatrol_toolchain_invocation_duration_seconds_bucket{}[5m]))`, nil},
		{`gopatrol_health_score{}`, []string{"metric gopatrol_health_score"}},
		{`rate(node_cpu_seconds_total[5m])`, []string{"metric node_cpu_seconds_total"}},
		{`sum by (pod) (gopatrol_probe_up_ratio{})`, []string{"label pod"}},
		{`gopatrol_probe_up_ratio{instance="x"}`, []string{"label instance"}},
		{`label_values(gopatrol_rule_state_ratio, gopatrol_rule_name)`, nil},
		{`label_values(up, job)`, []string{"metric up", "label job"}},
		{`{{k8s_node_name}} {{hostname}}`, []string{"label hostname"}},
		{`lower {{gopatrol_rule_name}}`, nil},
	} {
		if got := vet(c.expr, metrics, labels); !slices.Equal(got, c.bad) {
			t.Errorf("vet(%s) = %v, want %v", c.expr, got, c.bad)
		}
	}
}

// Every query, variable query and legend of the committed board names
// only metrics and labels of the catalogue.
func TestBoardNamesOnlyCatalogue(t *testing.T) {
	metrics, labels := vocabulary(t)
	raw, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	var board map[string]any
	if err := json.Unmarshal(raw, &board); err != nil {
		t.Fatalf("%s: %v", committed, err)
	}
	exprs := 0
	walk(board, "", func(path, key, s string) {
		switch key {
		case "expr", "query", "legendFormat", "definition":
		default:
			return
		}
		if key == "expr" {
			exprs++
		}
		if bad := vet(s, metrics, labels); len(bad) > 0 {
			t.Errorf("%s.%s %q names %v, which metricdef.Catalogue does not define", path, key, s, bad)
		}
	})
	if exprs < 10 {
		t.Errorf("only %d queries found in %s: the walk misses the panels", exprs, committed)
	}
}

func walk(v any, path string, f func(path, key, s string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok {
				f(path, k, s)
			}
			walk(x, path+"."+k, f)
		}
	case []any:
		for i, x := range v {
			walk(x, fmt.Sprintf("%s[%d]", path, i), f)
		}
	}
}

// The issue's panels and variables are all there.
func TestBoardHasTheIssuesPanels(t *testing.T) {
	d, err := Board()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(d)
	for _, want := range []string{
		"Health score per node", "Score per service and node", "Check status per node", "Rule value and its band",
		"Execs by tool", "Go command duration (p90)", "File-access failures by class and errno",
		"TLS handshake failures by server", "Lost sensor events", "Probes up",
	} {
		if !bytes.Contains(raw, []byte(`"title":"`+want+`"`)) {
			t.Errorf("no panel %q", want)
		}
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
		if v.Type == "query" && (v.AllValue == nil || *v.AllValue != ".*") {
			t.Errorf("variable %s: All must be .* so that series without the label still show", v.Name)
		}
	}
	for _, want := range []string{"cloud_provider", "cloud_region", "cloud_availability_zone", "k8s_node_name"} {
		if !slices.Contains(vars, want) {
			t.Errorf("variables %v lack %s", vars, want)
		}
	}
}
