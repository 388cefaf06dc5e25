package agent

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadDefaultsWithoutFile(t *testing.T) {
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	if cfg.Listen != want.Listen || cfg.Checks.Every != 5*time.Minute || cfg.Checks.FullAt != "02:00" || !cfg.Sensors.Enabled {
		t.Errorf("defaults: got %+v", cfg)
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		flags func(*Config)
		check func(t *testing.T, c Config)
		// errWant are substrings of the error; none means success.
		errWant []string
	}{
		{name: "empty file keeps defaults", body: "", check: func(t *testing.T, c Config) {
			if c.Checks.Every != 5*time.Minute {
				t.Errorf("every = %v", c.Checks.Every)
			}
		}},
		{name: "values override defaults, others stay", body: "listen: 0.0.0.0:9000\nchecks:\n  every: 30s\n  skip: [build.race-pprof]\n", check: func(t *testing.T, c Config) {
			if c.Listen != "0.0.0.0:9000" || c.Checks.Every != 30*time.Second || len(c.Checks.Skip) != 1 || c.Checks.FullAt != "02:00" {
				t.Errorf("got %+v", c)
			}
		}},
		{name: "flags override the file", body: "listen: 0.0.0.0:9000\n", flags: func(c *Config) { c.Listen = "127.0.0.1:0" }, check: func(t *testing.T, c Config) {
			if c.Listen != "127.0.0.1:0" {
				t.Errorf("listen = %s", c.Listen)
			}
		}},
		{name: "unknown top-level key", body: "lisen: x\n", errWant: []string{"lisen", "unknown key", "allowed here:", "listen"}},
		{name: "unknown nested key", body: "checks:\n  evry: 5m\n", errWant: []string{"checks.evry", ":2:", "every, full_at"}},
		{name: "bad duration", body: "checks:\n  every: soon\n", errWant: []string{"checks.every", `"soon"`, "a duration such as"}},
		{name: "too short duration", body: "checks:\n  every: 10ms\n", errWant: []string{"checks.every", "at least 1s"}},
		{name: "negative proof ttl", body: "checks:\n  proof_ttl: -1m\n", errWant: []string{"checks.proof_ttl", "-1m0s", "not be negative"}},
		{name: "proof ttl default and off", body: "checks:\n  proof_ttl: 0s\n", check: func(t *testing.T, c Config) {
			if c.Checks.ProofTTL != 0 || Default().Checks.ProofTTL != check.DefaultProofTTL {
				t.Errorf("proof_ttl = %v, default %v", c.Checks.ProofTTL, Default().Checks.ProofTTL)
			}
		}},
		{name: "bad bool", body: "sensors:\n  enabled: perhaps\n", errWant: []string{"sensors.enabled", "true or false"}},
		{name: "bad time of day", body: "checks:\n  full_at: \"25:00\"\n", errWant: []string{"checks.full_at", "HH:MM"}},
		{name: "bad level", body: "log:\n  level: loud\n", errWant: []string{"log.level", "debug, info, warn or error"}},
		{name: "ring size not a power of two", body: "sensors:\n  ring_size: 5000\n", errWant: []string{"sensors.ring_size", "power of two"}},
		{name: "relative host root", body: "host_root: host\n", errWant: []string{"host_root", "absolute"}},
		{name: "section not a mapping", body: "checks: 5\n", errWant: []string{"checks", "want a mapping"}},
		{name: "empty value", body: "listen:\n", errWant: []string{"listen", "empty value"}},
		{name: "bad listen", body: "listen: nowhere\n", errWant: []string{"listen", "host:port"}},
		{name: "go name with directory", body: "sensors:\n  go_names: [/usr/bin/go]\n", errWant: []string{"sensors.go_names", "without directory"}},
		{name: "cardinality limit", body: "metrics:\n  cardinality_limit: 0\n", errWant: []string{"metrics.cardinality_limit"}},
		{name: "not yaml", body: "listen: [\n", errWant: []string{"not YAML"}},
		{name: "environments niceness out of range", body: "environments:\n  nice: 20\n", errWant: []string{"environments.nice", "20", "from 0"}},
		{name: "environments niceness default", body: "", check: func(t *testing.T, c Config) {
			if c.Envs.Nice != DefaultEnvNice || !c.Envs.Idle {
				t.Errorf("environments.nice = %d, sched_idle = %v, want %d, true", c.Envs.Nice, c.Envs.Idle, DefaultEnvNice)
			}
		}},
		{name: "environments SCHED_IDLE off", body: "environments:\n  sched_idle: false\n", check: func(t *testing.T, c Config) {
			if c.Envs.Idle {
				t.Errorf("environments.sched_idle: false read as true")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConfig(t, tt.body)
			cfg, err := Load(p, tt.flags)
			if len(tt.errWant) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.File != p {
					t.Errorf("File = %q", cfg.File)
				}
				tt.check(t, cfg)
				return
			}
			if err == nil {
				t.Fatalf("no error for %q", tt.body)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v: want *ConfigError", err, err)
			}
			msg := err.Error()
			for _, w := range append(tt.errWant, p) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestLoadMissingFileNamesIt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "absent.yaml")
	_, err := Load(p, nil)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("err = %v", err)
	}
}

// docs/agent.md has a row for every key of Config, so the reference
// cannot drift from the code.
func TestDocsNameEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../docs/agent.md")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	var collect func(reflect.Type, string)
	collect = func(typ reflect.Type, prefix string) {
		for k, f := range yamlKeys(typ) {
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				collect(f.Type, prefix+k+".")
				continue
			}
			keys = append(keys, prefix+k)
		}
	}
	collect(reflect.TypeOf(Config{}), "")
	if len(keys) < 20 {
		t.Fatalf("only %d keys found: %v", len(keys), keys)
	}
	for _, k := range keys {
		if !strings.Contains(string(doc), "| `"+k+"` |") {
			t.Errorf("docs/agent.md has no row for %s", k)
		}
	}
}
