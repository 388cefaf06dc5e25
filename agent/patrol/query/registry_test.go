package query

import (
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/agent/internal/secret"
)

func TestRegistryRefuses(t *testing.T) {
	t.Setenv("QUERY_TEST_DSN", "patrol:Hidden-pw@tcp(127.0.0.1:3306)/patrol")
	t.Setenv("QUERY_TEST_BAD_DSN", "patrol:Hidden-pw@tcp(127.0.0.1:3306")
	tests := []struct {
		name string
		cfg  Servers
		want []string
	}{
		{"bad url", Servers{Prometheus: map[string]PrometheusServer{"p": {URL: "prom:9090"}}}, []string{"prometheus.p", "not an http(s) URL"}},
		{"bad driver", Servers{Databases: map[string]Database{"d": {Driver: "sqlite", DSN: secret.Source{Env: "QUERY_TEST_DSN"}}}}, []string{"databases.d", `driver "sqlite"`}},
		{"unset dsn", Servers{Databases: map[string]Database{"d": {Driver: "mysql", DSN: secret.Source{Env: "QUERY_TEST_UNSET"}}}}, []string{"databases.d", "QUERY_TEST_UNSET is not set"}},
		{"bad dsn", Servers{Databases: map[string]Database{"d": {Driver: "mysql", DSN: secret.Source{Env: "QUERY_TEST_BAD_DSN"}}}}, []string{"databases.d", "does not parse"}},
	}
	for _, tt := range tests {
		_, err := NewRegistry(tt.cfg)
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: err = %v, want %q", tt.name, err, w)
			}
		}
		if err != nil && strings.Contains(err.Error(), "Hidden-pw") {
			t.Errorf("%s: error quotes the password: %v", tt.name, err)
		}
	}
}

func TestRegistryTargets(t *testing.T) {
	t.Setenv("QUERY_TEST_DSN", "patrol:Hidden-pw@tcp(127.0.0.1:3306)/patrol")
	dsn := secret.Source{Env: "QUERY_TEST_DSN"}
	reg, err := NewRegistry(Servers{
		Prometheus: map[string]PrometheusServer{"a": {URL: "http://127.0.0.1:9090"}, "b": {URL: "http://127.0.0.1:9091"}},
		Databases:  map[string]Database{"mysql-primary": {Driver: "mariadb", DSN: dsn}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for _, tt := range []struct {
		kind, target, want string
	}{
		{"promql", "", "name one of a, b"},
		{"promql", "c", `"c" is not configured: use one of a, b`},
		{"promql", "b", ""},
		{"sql", "", ""},
		{"sql", "mysql-primary", ""},
		{"sql", "pg", `"pg" is not configured: use one of mysql-primary`},
	} {
		var err error
		if tt.kind == "promql" {
			_, err = reg.PromQL(tt.target, "up", 0)
		} else {
			_, err = reg.SQL(tt.target, "SELECT 1", 0)
		}
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s target %q: err = %v, want %q", tt.kind, tt.target, err, tt.want)
		}
	}
	empty, _ := NewRegistry(Servers{})
	if _, err := empty.SQL("x", "SELECT 1", 0); err == nil || !strings.Contains(err.Error(), "no database configured") {
		t.Errorf("empty registry: %v", err)
	}
}
