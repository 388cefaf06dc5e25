package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/catalog"
	"github.com/gopatrol/gopatrol/agent/logging"
	"github.com/gopatrol/gopatrol/bpf"
)

// Config is the agent's configuration: defaults (Default), then the YAML
// file, then OTEL_* for the export (otelcfg.FromEnv), then the command's
// flags. docs/agent.md documents every key; TestDocsNameEveryKey keeps it so.
type Config struct {
	// Listen is the address of /healthz, /readyz, /status and /metrics.
	Listen string `yaml:"listen"`
	// HostRoot is the node's filesystem as this process sees it: "/" on a
	// machine, "/host" in the DaemonSet. Checks run against it.
	HostRoot string `yaml:"host_root"`
	// StateDir keeps what must survive a restart (baselines, audit log,
	// outbox of the rule engine).
	StateDir string `yaml:"state_dir"`
	// Go is the go binary the checks use, in the host's namespace; empty
	// means the first go on the host's PATH.
	Go      string        `yaml:"go"`
	Log     LogConfig     `yaml:"log"`
	Checks  ChecksConfig  `yaml:"checks"`
	Sensors SensorsConfig `yaml:"sensors"`
	Traces  TracesConfig  `yaml:"traces"`
	// Envs is the patrol of the environments builds use (envs.go).
	Envs    EnvsConfig    `yaml:"environments"`
	Plugins PluginsConfig `yaml:"plugins"`
	// Collect is the schedule of the probes' cloud metrics (collect.go).
	Collect CollectConfig `yaml:"collect"`
	K8s     K8sConfig     `yaml:"kubernetes"`
	Metrics MetricsConfig `yaml:"metrics"`
	// Rules, Notify and Sources are the patrol rule engine, where its
	// events go, and the servers its promql and sql rules query
	// (rulesconfig.go).
	Rules   RulesConfig  `yaml:"rules"`
	Notify  notifyConfig `yaml:"notify"`
	Sources sources      `yaml:"sources"`
	// Remediation is the node's opt-in to rules that act (remediate.go).
	Remediation RemediationConfig `yaml:"remediation"`
	// ShutdownTimeout bounds the whole stop on SIGTERM: running checks get
	// Checks.Grace of it, the final flush what is left.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`

	// File is the file this config was read from ("" for defaults only).
	File string `yaml:"-"`
}

// LogConfig shapes the agent's own logs (JSON on stderr).
type LogConfig struct {
	Level string `yaml:"level"`
}

// ChecksConfig is the doctor's schedule.
type ChecksConfig struct {
	// Every is the period of the default set (the checks that are not
	// slow).
	Every time.Duration `yaml:"every"`
	// FullAt is the node-local time of day ("HH:MM") of the full set,
	// slow checks included; FullSplay spreads the nodes of a fleet over
	// that long after it, by a hash of the host identity. An empty FullAt
	// turns the daily full set off.
	FullAt    string        `yaml:"full_at"`
	FullSplay time.Duration `yaml:"full_splay"`
	// Skip are check IDs never run.
	Skip []string `yaml:"skip"`
	// Timeout is the per-check timeout (0: the runner's defaults).
	Timeout time.Duration `yaml:"timeout"`
	// ProofTTL is how long a kept proof of the checks that run the
	// toolchain (go run, the cgo and PIE builds, go tool compile) stands
	// while its inputs are unchanged (docs/checks.md, "Kept proofs"); 0
	// proves on every patrol.
	ProofTTL time.Duration `yaml:"proof_ttl"`
	// AsUser probes as this user of the host (the one who builds).
	AsUser string `yaml:"as_user"`
	// Dir is the module directory of module checks, in the host's
	// namespace.
	Dir string `yaml:"dir"`
	// Grace is how long running checks may finish on SIGTERM.
	Grace time.Duration `yaml:"grace"`
}

// SensorsConfig turns the eBPF sensors on and shapes them.
type SensorsConfig struct {
	Enabled bool `yaml:"enabled"`
	// Require makes a sensor that cannot start fatal instead of degraded.
	Require bool `yaml:"require"`
	// TLS attaches the TLS handshake probes.
	TLS bool `yaml:"tls"`
	// GoNames are the executable names whose exec starts a tree.
	GoNames  []string `yaml:"go_names"`
	RingSize int      `yaml:"ring_size"`
	// RunTime turns on the kernel's BPF run-time statistics.
	RunTime bool `yaml:"run_time"`
}

// PluginsConfig says where the cloud probe plugins are.
type PluginsConfig struct {
	// Dir is the plugin directory; empty runs no plugins.
	Dir string `yaml:"dir"`
	// ProbeDeadline bounds the detection at start, so the first export
	// already carries cloud.*.
	ProbeDeadline time.Duration `yaml:"probe_deadline"`
}

// K8sConfig names the Downward API sources: files, for what the
// environment variables (K8S_NODE_NAME, K8S_POD_NAME, K8S_NAMESPACE_NAME,
// K8S_POD_UID) do not set.
type K8sConfig struct {
	ClusterName   string `yaml:"cluster_name"`
	NodeNameFile  string `yaml:"node_name_file"`
	PodNameFile   string `yaml:"pod_name_file"`
	PodUIDFile    string `yaml:"pod_uid_file"`
	NamespaceFile string `yaml:"namespace_file"`
	// NodeLabelsFile is a Downward API labels file (key="value" lines)
	// whose topology.kubernetes.io/region and /zone give cloud.region and
	// cloud.availability_zone when no probe did.
	NodeLabelsFile string `yaml:"node_labels_file"`
}

// MetricsConfig bounds what the agent records.
type MetricsConfig struct {
	// CardinalityLimit is the SDK's limit of attribute sets per
	// instrument and collection; beyond it points fold into the
	// otel.metric.overflow set.
	CardinalityLimit int `yaml:"cardinality_limit"`
}

// Default is the config with every key at its default.
func Default() Config {
	return Config{
		Listen:   "127.0.0.1:9478",
		HostRoot: "/",
		StateDir: "/var/lib/gopatrol",
		Log:      LogConfig{Level: "info"},
		Checks: ChecksConfig{
			Every:     5 * time.Minute,
			FullAt:    "02:00",
			FullSplay: 30 * time.Minute,
			Grace:     5 * time.Second,
			ProofTTL:  check.DefaultProofTTL,
		},
		Sensors: SensorsConfig{
			Enabled:  true,
			TLS:      true,
			GoNames:  []string{"go"},
			RingSize: bpf.DefaultRingSize,
		},
		Traces:          DefaultTraces(),
		Envs:            DefaultEnvs(),
		Plugins:         PluginsConfig{ProbeDeadline: 5 * time.Second},
		Collect:         CollectConfig{Every: time.Minute},
		Metrics:         MetricsConfig{CardinalityLimit: 200},
		Rules:           defaultRules(),
		Remediation:     defaultRemediation(),
		ShutdownTimeout: 10 * time.Second,
	}
}

// ConfigError is a config that cannot run: the file, the key and what the
// key allows.
type ConfigError struct {
	File, Key string
	Line      int
	Msg       string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("config")
	if e.File != "" {
		b.WriteString(" " + e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// Load reads the file at path over the defaults ("" reads none), applies
// flags (the command's overrides, may be nil) and validates the result.
func Load(path string, flags func(*Config)) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, &ConfigError{File: path, Msg: fmt.Sprintf("cannot read: %v", err)}
		}
		if err := decode(b, &cfg); err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) {
				ce.File = path
				return Config{}, ce
			}
			return Config{}, &ConfigError{File: path, Msg: err.Error()}
		}
		cfg.File = path
	}
	if flags != nil {
		flags(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.File = cfg.File
		}
		return Config{}, err
	}
	return cfg, nil
}

// decode reads YAML over cfg. Keys are first walked against Config's tags
// so that an unknown key or a bad value is named with its full path and
// what is allowed; the decoder itself then runs with KnownFields as well.
func decode(b []byte, cfg *Config) error {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return fmt.Errorf("not YAML: %w", err)
	}
	if len(root.Content) == 0 {
		return nil // an empty file keeps the defaults
	}
	if err := walk(root.Content[0], reflect.TypeOf(*cfg), ""); err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

// walk checks node against type t: mappings only with t's keys, leaves
// that decode into their field's type.
func walk(n *yaml.Node, t reflect.Type, path string) error {
	if t.Kind() == reflect.Struct {
		keys := yamlKeys(t)
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return nil
			}
			return &ConfigError{Key: orRoot(path), Line: n.Line, Msg: "want a mapping of " + strings.Join(slices.Sorted(mapKeys(keys)), ", ")}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := join(path, k.Value)
			f, ok := keys[k.Value]
			if !ok {
				return &ConfigError{Key: key, Line: k.Line, Msg: "unknown key; allowed here: " + strings.Join(slices.Sorted(mapKeys(keys)), ", ")}
			}
			if err := walk(v, f.Type, key); err != nil {
				return err
			}
		}
		return nil
	}
	if n.Tag == "!!null" {
		return &ConfigError{Key: path, Line: n.Line, Msg: "empty value; want " + describe(t) + " (remove the key for the default)"}
	}
	v := reflect.New(t)
	if err := n.Decode(v.Interface()); err != nil {
		return &ConfigError{Key: path, Line: n.Line, Msg: fmt.Sprintf("%q: want %s", n.Value, describe(t))}
	}
	return nil
}

func yamlKeys(t reflect.Type) map[string]reflect.StructField {
	keys := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		keys[name] = f
	}
	return keys
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func describe(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 30s or 5m"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Int:
		return "an integer"
	case t.Kind() == reflect.Slice:
		return "a list of " + describe(t.Elem()) + "s"
	}
	return "a string"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

// Validate checks every value that YAML's types cannot: ranges, formats,
// absolute paths. The error names the key and what it allows.
func (c Config) Validate() error {
	bad := func(key, format string, a ...any) error {
		return &ConfigError{File: c.File, Key: key, Msg: fmt.Sprintf(format, a...)}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("listen", "%q: want host:port, e.g. 127.0.0.1:9478 (port 0 picks one)", c.Listen)
	}
	for key, p := range map[string]string{"host_root": c.HostRoot, "state_dir": c.StateDir} {
		if !filepath.IsAbs(p) {
			return bad(key, "%q: want an absolute path", p)
		}
	}
	if _, err := logging.Parse("json", c.Log.Level); err != nil {
		return bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	if _, err := check.Select(catalog.All(), nil, c.Checks.Skip, true); err != nil {
		return bad("checks.skip", "%v", err)
	}
	if c.Checks.Every < time.Second {
		return bad("checks.every", "%v: want a duration of at least 1s", c.Checks.Every)
	}
	if c.Checks.FullAt != "" {
		if _, err := time.Parse("15:04", c.Checks.FullAt); err != nil {
			return bad("checks.full_at", "%q: want a time of day HH:MM (24-hour), or \"\" for no daily full set", c.Checks.FullAt)
		}
	}
	if c.Checks.FullSplay < 0 || c.Checks.FullSplay > 24*time.Hour {
		return bad("checks.full_splay", "%v: want a duration from 0 to 24h", c.Checks.FullSplay)
	}
	if c.Checks.ProofTTL < 0 {
		return bad("checks.proof_ttl", "%v: must not be negative (0 proves on every patrol)", c.Checks.ProofTTL)
	}
	if c.Checks.Timeout < 0 {
		return bad("checks.timeout", "%v: must not be negative (0 is the runner's default)", c.Checks.Timeout)
	}
	if c.Checks.Grace < 0 || c.Checks.Grace > c.ShutdownTimeout {
		return bad("checks.grace", "%v: want from 0 to shutdown_timeout (%v)", c.Checks.Grace, c.ShutdownTimeout)
	}
	if c.ShutdownTimeout <= 0 {
		return bad("shutdown_timeout", "%v: want a positive duration", c.ShutdownTimeout)
	}
	page := os.Getpagesize()
	if r := c.Sensors.RingSize; r < page || r&(r-1) != 0 {
		return bad("sensors.ring_size", "%d: want a power of two of at least %d bytes", r, page)
	}
	if len(c.Sensors.GoNames) == 0 {
		return bad("sensors.go_names", "empty: want at least one executable name, e.g. [go]")
	}
	for _, n := range c.Sensors.GoNames {
		if n == "" || strings.Contains(n, "/") {
			return bad("sensors.go_names", "%q: want an executable name, without directory", n)
		}
	}
	if err := c.Traces.validate(c.File); err != nil {
		return err
	}
	if err := c.Envs.validate(c.File); err != nil {
		return err
	}
	if c.Plugins.Dir != "" && !filepath.IsAbs(c.Plugins.Dir) {
		return bad("plugins.dir", "%q: want an absolute path, or \"\" for no plugins", c.Plugins.Dir)
	}
	if c.Plugins.ProbeDeadline <= 0 || c.Plugins.ProbeDeadline > time.Minute {
		return bad("plugins.probe_deadline", "%v: want a duration from 1ms to 1m", c.Plugins.ProbeDeadline)
	}
	if err := c.Collect.validate(c.File); err != nil {
		return err
	}
	for key, p := range map[string]string{
		"kubernetes.node_name_file": c.K8s.NodeNameFile, "kubernetes.pod_name_file": c.K8s.PodNameFile,
		"kubernetes.pod_uid_file": c.K8s.PodUIDFile, "kubernetes.namespace_file": c.K8s.NamespaceFile,
		"kubernetes.node_labels_file": c.K8s.NodeLabelsFile,
	} {
		if p != "" && !filepath.IsAbs(p) {
			return bad(key, "%q: want an absolute path, or \"\" for the environment variable", p)
		}
	}
	if c.Metrics.CardinalityLimit < 1 || c.Metrics.CardinalityLimit > 100000 {
		return bad("metrics.cardinality_limit", "%d: want from 1 to 100000 attribute sets per instrument", c.Metrics.CardinalityLimit)
	}
	if err := c.validateRemediation(); err != nil {
		return err
	}
	return c.validateRules()
}
