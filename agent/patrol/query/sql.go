package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/gopatrol/gopatrol/agent/internal/secret"
)

// SQLConfig is a `sql` rule's source.
type SQLConfig struct {
	// Driver is "mysql" (MySQL and MariaDB) or "postgres".
	Driver string
	// DSN says where the connection string is kept: it holds the
	// password, so it is a secret. mysql: user:password@tcp(host:port)/db;
	// postgres: postgres://user:password@host:port/db?sslmode=...
	DSN secret.Source
	// Query must return one row with one numeric column.
	Query string
	// Timeout bounds one query, connecting included (default 10s).
	Timeout time.Duration
}

// SQL runs one query per evaluation over a small connection pool.
type SQL struct {
	pool    *pool
	query   string
	timeout time.Duration
	owned   bool // Close closes the pool (NewSQL); a Registry's pools are shared
}

// pool is one database: its connection pool and the redaction of its DSN.
type pool struct {
	db     *sql.DB
	redact *strings.Replacer
}

// NewSQL reads the DSN, checks that it parses for the driver, and returns
// the source. It does not connect: the first Query does.
func NewSQL(cfg SQLConfig) (*SQL, error) {
	p, err := openPool(cfg.Driver, cfg.DSN)
	if err != nil {
		return nil, err
	}
	s, err := p.source(cfg.Query, cfg.Timeout)
	if err != nil {
		p.db.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

// source is a query on p.
func (p *pool) source(query string, timeout time.Duration) (*SQL, error) {
	if strings.TrimSpace(query) == "" {
		return nil, errors.New("sql: empty query")
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &SQL{pool: p, query: query, timeout: timeout}, nil
}

// openPool checks the driver, reads and parses the DSN and opens a pool
// (without connecting).
func openPool(driverName string, dsnSource secret.Source) (*pool, error) {
	var driver string
	switch strings.ToLower(driverName) {
	case "mysql", "mariadb":
		driver = "mysql"
	case "postgres", "postgresql", "pgx":
		driver = "pgx"
	default:
		return nil, fmt.Errorf("sql: driver %q: use mysql (MySQL, MariaDB) or postgres", driverName)
	}
	dsn, err := dsnSource.Load()
	if err != nil {
		return nil, fmt.Errorf("sql dsn: %w", err)
	}
	pw, err := dsnPassword(driver, dsn)
	if err != nil {
		// The parser's message may quote the DSN: it is withheld.
		return nil, fmt.Errorf("sql: the DSN from %s does not parse for driver %s (the parser's message is withheld, it may quote the password); %s", dsnSource, driverName, dsnForm(driver))
	}
	p := &pool{redact: redactor(dsn, pw)}
	if p.db, err = sql.Open(driver, dsn); err != nil {
		return nil, fmt.Errorf("sql: %s", p.redact.Replace(err.Error()))
	}
	p.db.SetMaxOpenConns(2)
	p.db.SetMaxIdleConns(1)
	p.db.SetConnMaxIdleTime(5 * time.Minute)
	return p, nil
}

func dsnForm(driver string) string {
	if driver == "mysql" {
		return "write user:password@tcp(host:port)/database"
	}
	return "write postgres://user:password@host:port/database?sslmode=verify-full"
}

// dsnPassword parses dsn for driver and returns the password it holds.
func dsnPassword(driver, dsn string) (string, error) {
	if driver == "mysql" {
		c, err := mysql.ParseDSN(dsn)
		if err != nil {
			return "", err
		}
		return c.Passwd, nil
	}
	c, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "", err
	}
	return c.Password, nil
}

// redactor replaces the DSN and the password, also as URL-escaped, with
// "***": driver messages quote connection strings in places.
func redactor(dsn, pw string) *strings.Replacer {
	old := []string{dsn, "***"}
	if pw != "" {
		for _, p := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw)} {
			old = append(old, p, "***")
		}
	}
	return strings.NewReplacer(old...)
}

// Close closes the connection pool of a source from NewSQL; a Registry's
// sources share their pool, which Registry.Close closes.
func (s *SQL) Close() error {
	if !s.owned {
		return nil
	}
	return s.pool.db.Close()
}

// Query runs the query and returns its one value.
func (s *SQL) Query(ctx context.Context) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rows, err := s.pool.db.QueryContext(ctx, s.query)
	if err != nil {
		return 0, s.fail(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, s.fail(err)
	}
	if len(cols) != 1 {
		return 0, fmt.Errorf("sql: %w: %d columns, want one", ErrManyValues, len(cols))
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return 0, s.fail(err)
		}
		return 0, fmt.Errorf("sql: %w: no rows", ErrNoData)
	}
	var v any
	if err := rows.Scan(&v); err != nil {
		return 0, s.fail(err)
	}
	if rows.Next() {
		return 0, fmt.Errorf("sql: %w: more than one row (add LIMIT 1 or aggregate)", ErrManyValues)
	}
	if err := rows.Err(); err != nil {
		return 0, s.fail(err)
	}
	return number(v)
}

// number converts what a driver scanned into a float64.
func number(v any) (float64, error) {
	switch x := v.(type) {
	case int64:
		return float64(x), nil
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case []byte: // MySQL DECIMAL and text protocol values
		return parseNumber(string(x))
	case string:
		return parseNumber(x)
	case nil:
		return 0, fmt.Errorf("sql: %w: NULL", ErrNotNumber)
	}
	// pgtype.Numeric and friends print as their number.
	return parseNumber(fmt.Sprint(v))
}

func parseNumber(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		return 0, fmt.Errorf("sql: %w: %q", ErrNotNumber, s)
	}
	return f, nil
}

// fail turns a driver error into a named, redacted one. The driver error
// itself is not wrapped: its text is redacted and only the kind is kept.
func (s *SQL) fail(err error) error {
	kind := ErrUnavailable
	var my *mysql.MySQLError
	var pg *pgconn.PgError
	switch {
	case errors.As(err, &my) && (my.Number == 1064 || my.Number == 1146 || my.Number == 1054 || my.Number == 1142):
		kind = ErrBadQuery // syntax, unknown table or column, no privilege on the table
	case errors.As(err, &pg) && (strings.HasPrefix(pg.Code, "42") || pg.Code == "22P02"):
		kind = ErrBadQuery // syntax error or access rule violation, bad text representation
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("sql: %w: no answer within %s", ErrUnavailable, s.timeout)
	}
	return fmt.Errorf("sql: %w: %s", kind, s.pool.redact.Replace(err.Error()))
}
