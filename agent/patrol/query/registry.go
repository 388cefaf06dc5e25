package query

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gopatrol/gopatrol/agent/internal/secret"
)

// Servers is the agent's configuration of what `promql` and `sql` rules
// query. A rule's `target` names an entry (the source's
// `target: "mysql-primary"`); a rule without a target uses the only entry
// when there is exactly one.
type Servers struct {
	Prometheus map[string]PrometheusServer `yaml:"prometheus,omitempty" json:"prometheus,omitempty"`
	Databases  map[string]Database         `yaml:"databases,omitempty" json:"databases,omitempty"`
}

// PrometheusServer is a Prometheus HTTP API.
type PrometheusServer struct {
	URL string `yaml:"url" json:"url"`
}

// Database is a MySQL/MariaDB or PostgreSQL server; its DSN, which holds
// the password, comes from a file or an environment variable.
type Database struct {
	Driver string        `yaml:"driver" json:"driver"`
	DSN    secret.Source `yaml:"dsn" json:"dsn"`
}

// Registry builds the sources of rules from Servers. Sources of one
// database share one connection pool.
type Registry struct {
	cfg    Servers
	client *http.Client

	mu    sync.Mutex
	pools map[string]*pool
}

// NewRegistry checks every entry (URLs parse, drivers are known, each DSN
// can be read and parses) and opens the pools without connecting. Errors
// name the entry, never a DSN.
func NewRegistry(cfg Servers) (*Registry, error) {
	r := &Registry{cfg: cfg, client: &http.Client{}, pools: map[string]*pool{}}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(cfg.Prometheus)) {
		if _, err := NewPromQL(PromQLConfig{URL: cfg.Prometheus[name].URL, Query: "vector(1)"}); err != nil {
			errs = append(errs, fmt.Errorf("prometheus.%s: %w", name, err))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Databases)) {
		db := cfg.Databases[name]
		p, err := openPool(db.Driver, db.DSN)
		if err != nil {
			errs = append(errs, fmt.Errorf("databases.%s: %w", name, err))
			continue
		}
		r.pools[name] = p
	}
	if err := errors.Join(errs...); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// pick resolves a rule's target among names.
func pick(kind, target string, names []string) (string, error) {
	if target == "" && len(names) == 1 {
		return names[0], nil
	}
	if slices.Contains(names, target) {
		return target, nil
	}
	if len(names) == 0 {
		return "", fmt.Errorf("%s target %q: no %s configured", kind, target, kind)
	}
	if target == "" {
		return "", fmt.Errorf("%s rule without target: name one of %s", kind, strings.Join(names, ", "))
	}
	return "", fmt.Errorf("%s target %q is not configured: use one of %s", kind, target, strings.Join(names, ", "))
}

// PromQL is the source of a `promql` rule.
func (r *Registry) PromQL(target, query string, timeout time.Duration) (*PromQL, error) {
	name, err := pick("prometheus", target, slices.Sorted(maps.Keys(r.cfg.Prometheus)))
	if err != nil {
		return nil, err
	}
	return NewPromQL(PromQLConfig{URL: r.cfg.Prometheus[name].URL, Query: query, Timeout: timeout, Client: r.client})
}

// SQL is the source of a `sql` rule, on the target's shared pool.
func (r *Registry) SQL(target, query string, timeout time.Duration) (*SQL, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name, err := pick("database", target, slices.Sorted(maps.Keys(r.pools)))
	if err != nil {
		return nil, err
	}
	return r.pools[name].source(query, timeout)
}

// Close closes every database pool; the sources built on them stop
// working.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for name, p := range r.pools {
		errs = append(errs, p.db.Close())
		delete(r.pools, name)
	}
	return errors.Join(errs...)
}
