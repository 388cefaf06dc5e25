package query

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/internal/secret"
	"github.com/gopatrol/gopatrol/agent/internal/servertest"
)

// sqlWorld is one real database server with a table shaped like the
// source's example (replication delay per replica).
type sqlWorld struct {
	driver string
	db     *servertest.DB
	sleep  string // a query that takes 5 s
}

func newSQLWorld(t *testing.T, driver string) sqlWorld {
	t.Helper()
	w := sqlWorld{driver: driver}
	drv := "mysql"
	switch driver {
	case "mysql":
		w.db = servertest.MariaDB(t)
		w.sleep = "SELECT SLEEP(5)"
	case "postgres":
		w.db = servertest.Postgres(t)
		w.sleep = "SELECT 1 FROM pg_sleep(5)"
		drv = "pgx"
	}
	db, err := sql.Open(drv, w.db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range []string{
		"CREATE TABLE replica_host_status (host VARCHAR(64) PRIMARY KEY, seconds_behind_master DECIMAL(10,3))",
		"INSERT INTO replica_host_status VALUES ('db-1', 75.4), ('db-2', 3.25), ('db-3', NULL)",
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return w
}

func (w sqlWorld) source(t *testing.T, dsn secret.Source, query string, timeout time.Duration) *SQL {
	t.Helper()
	s, err := NewSQL(SQLConfig{Driver: w.driver, DSN: dsn, Query: query, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSQLRealServers runs the same table against a real MariaDB and a
// real PostgreSQL: values, the named errors, credentials from a file and
// from the environment, and that no error quotes the password or DSN.
func TestSQLRealServers(t *testing.T) {
	for _, driver := range []string{"mysql", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			w := newSQLWorld(t, driver)
			dsnFile := filepath.Join(t.TempDir(), "dsn")
			if err := os.WriteFile(dsnFile, []byte(w.db.DSN+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			fromFile := secret.Source{File: dsnFile}
			tests := []struct {
				name  string
				query string
				want  float64
				err   error
			}{
				{"source example", "SELECT ROUND(seconds_behind_master, 0) FROM replica_host_status WHERE host = 'db-1'", 75, nil},
				{"decimal", "SELECT seconds_behind_master FROM replica_host_status WHERE host = 'db-2'", 3.25, nil},
				{"count", "SELECT COUNT(*) FROM replica_host_status", 3, nil},
				{"max", "SELECT MAX(seconds_behind_master) FROM replica_host_status", 75.4, nil},
				{"no rows", "SELECT seconds_behind_master FROM replica_host_status WHERE host = 'db-9'", 0, ErrNoData},
				{"many rows", "SELECT seconds_behind_master FROM replica_host_status", 0, ErrManyValues},
				{"many columns", "SELECT 1, 2", 0, ErrManyValues},
				{"null", "SELECT seconds_behind_master FROM replica_host_status WHERE host = 'db-3'", 0, ErrNotNumber},
				{"text", "SELECT host FROM replica_host_status WHERE host = 'db-1'", 0, ErrNotNumber},
				{"syntax", "SELEC 1", 0, ErrBadQuery},
				{"unknown table", "SELECT x FROM no_such_table", 0, ErrBadQuery},
			}
			for _, tt := range tests {
				got, err := w.source(t, fromFile, tt.query, 5*time.Second).Query(context.Background())
				if tt.err != nil {
					if !errors.Is(err, tt.err) {
						t.Errorf("%s: %q: err = %v, want %v", tt.name, tt.query, err, tt.err)
					}
					checkRedacted(t, err, w.db)
					continue
				}
				if err != nil || got != tt.want {
					t.Errorf("%s: %q = %v, %v; want %v", tt.name, tt.query, got, err, tt.want)
				}
			}

			env := "GOPATROL_TEST_DSN_" + strings.ToUpper(driver)
			setenv(t, env, w.db.DSN)
			if got, err := w.source(t, secret.Source{Env: env}, "SELECT COUNT(*) FROM replica_host_status", 5*time.Second).Query(context.Background()); err != nil || got != 3 {
				t.Errorf("DSN from env: %v, %v", got, err)
			}

			// The agent's way: a Registry of named databases, rules naming
			// one as target, sharing its pool.
			reg, err := NewRegistry(Servers{Databases: map[string]Database{"mysql-primary": {Driver: driver, DSN: fromFile}}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { reg.Close() })
			count, err1 := reg.SQL("mysql-primary", "SELECT COUNT(*) FROM replica_host_status", 5*time.Second)
			maxDelay, err2 := reg.SQL("", "SELECT MAX(seconds_behind_master) FROM replica_host_status", 5*time.Second)
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			if count.pool != maxDelay.pool {
				t.Error("two sources of one database do not share its pool")
			}
			for src, want := range map[*SQL]float64{count: 3, maxDelay: 75.4} {
				if got, err := src.Query(context.Background()); err != nil || got != want {
					t.Errorf("registry source %q = %v, %v; want %v", src.query, got, err, want)
				}
			}
			if _, err := reg.SQL("mysql-replica", "SELECT 1", 0); err == nil || !strings.Contains(err.Error(), "use one of mysql-primary") {
				t.Errorf("unknown target: err = %v", err)
			}

			start := time.Now()
			_, err = w.source(t, fromFile, w.sleep, 300*time.Millisecond).Query(context.Background())
			if !errors.Is(err, ErrUnavailable) || time.Since(start) > 3*time.Second {
				t.Errorf("slow query: err = %v after %s, want ErrUnavailable at the 300ms deadline", err, time.Since(start))
			}

			wrong := strings.Replace(w.db.DSN, w.db.Password, "Wr0ngPassw0rd-xyzzy", 1)
			setenv(t, env, wrong)
			_, err = w.source(t, secret.Source{Env: env}, "SELECT 1", 5*time.Second).Query(context.Background())
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("wrong password: err = %v, want ErrUnavailable", err)
			}
			if err != nil && (strings.Contains(err.Error(), "Wr0ngPassw0rd-xyzzy") || strings.Contains(err.Error(), wrong)) {
				t.Errorf("error quotes the password or DSN: %v", err)
			}
		})
	}
}

// checkRedacted fails t if err quotes the database's password or DSN.
func checkRedacted(t *testing.T, err error, db *servertest.DB) {
	t.Helper()
	if err != nil && (strings.Contains(err.Error(), db.Password) || strings.Contains(err.Error(), db.DSN)) {
		t.Errorf("error quotes the password or DSN: %v", err)
	}
}

// TestSQLRedaction: a server that is down, a DSN that does not parse, and
// a bad driver: the errors name the problem without the secret.
func TestSQLRedaction(t *testing.T) {
	const pw = "Sup3r-s3cret-%2F"
	down := "127.0.0.1:1" // nothing listens on port 1
	tests := []struct {
		driver, dsn string
		newErr      string // error from NewSQL
		queryErr    error
	}{
		{"mysql", "patrol:" + pw + "@tcp(" + down + ")/patrol?timeout=2s", "", ErrUnavailable},
		{"postgres", "postgres://patrol:" + pw + "@" + down + "/patrol?sslmode=disable&connect_timeout=2", "", ErrUnavailable},
		{"mysql", "patrol:" + pw + "@tcp(" + down + "/patrol", "does not parse", nil},
		{"postgres", "postgres://patrol:" + pw + "@[::1/patrol", "does not parse", nil},
		{"oracle", "patrol/" + pw + "@db", "use mysql", nil},
	}
	for _, tt := range tests {
		t.Setenv("GOPATROL_TEST_DSN", tt.dsn)
		s, err := NewSQL(SQLConfig{Driver: tt.driver, DSN: secret.Source{Env: "GOPATROL_TEST_DSN"}, Query: "SELECT 1"})
		if tt.newErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.newErr) {
				t.Errorf("%s %s: NewSQL err = %v, want %q", tt.driver, tt.dsn, err, tt.newErr)
			}
		} else if err != nil {
			t.Errorf("%s: NewSQL: %v", tt.driver, err)
		} else {
			_, err = s.Query(context.Background())
			s.Close()
			if !errors.Is(err, tt.queryErr) {
				t.Errorf("%s: Query err = %v, want %v", tt.driver, err, tt.queryErr)
			}
		}
		if err != nil && (strings.Contains(err.Error(), "Sup3r") || strings.Contains(err.Error(), "s3cret")) {
			t.Errorf("%s: error quotes the password: %v", tt.driver, err)
		}
	}
}

// setenv is t.Setenv for parallel subtests, each with its own variable.
func setenv(t *testing.T, k, v string) {
	t.Helper()
	if err := os.Setenv(k, v); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Unsetenv(k) })
}
