package servertest

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/internal/loopback"
)

// DB is a running database server with one database that one user, with
// a random password, owns.
type DB struct {
	*Server
	User, Password, Database string
	// DSN connects as User: go-sql-driver/mysql form for MariaDB, a
	// postgres:// URL for PostgreSQL.
	DSN string
}

func password() string {
	return "pw-" + rand.Text()
}

// cmdReady is a readiness probe: a client command succeeds within 5 s.
func cmdReady(env []string, argv ...string) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), env...)
		cmd.WaitDelay = time.Second
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, snippet(out))
		}
		return nil
	}
}

func snippet(b []byte) []byte {
	return b[:min(len(b), 512)]
}

// MariaDB initialises a data directory with mariadb-install-db and starts
// mariadbd on it (as root, --user=root), then creates database "patrol"
// and user "patrol" through the unix socket.
func MariaDB(tb testing.TB) *DB {
	tb.Helper()
	needRoot(tb, "to run mariadbd with --user=root")
	installDB := need(tb, "mariadb-install-db", "mariadb-server")
	mariadbd := need(tb, "mariadbd", "mariadb-server")
	client := need(tb, "mariadb", "mariadb-server, through mariadb-client-core")
	dir := tempDir(tb, "mariadb")
	data := filepath.Join(dir, "data")
	sock := filepath.Join(dir, "mysqld.sock")
	run(tb, nil, installDB, "--no-defaults", "--datadir="+data, "--user=root",
		"--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve",
		// Passed on to the bootstrap server: a test database needs no
		// durability, and these halve the bootstrap's time.
		"--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0", "--skip-log-bin",
		"--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M")
	addr := loopback.UnusedAddr(tb)
	s := start(tb, "mariadb", dir, addr, syscall.SIGTERM, mariadbd, "--no-defaults",
		"--datadir="+data, "--socket="+sock, "--pid-file="+filepath.Join(dir, "mysqld.pid"),
		"--bind-address=127.0.0.1", "--port="+port(addr), "--user=root",
		"--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
		"--innodb-log-file-size=8M", "--innodb-flush-log-at-trx-commit=0")
	s.waitFor(tb, cmdReady(nil, client, "--no-defaults", "--socket="+sock, "--user=root", "-e", "SELECT 1"))
	db := &DB{Server: s, User: "patrol", Password: password(), Database: "patrol"}
	run(tb, nil, client, "--no-defaults", "--socket="+sock, "--user=root", "-e", fmt.Sprintf(
		"CREATE DATABASE %[1]s; CREATE USER '%[2]s'@'%%' IDENTIFIED BY '%[3]s'; GRANT ALL ON %[1]s.* TO '%[2]s'@'%%';",
		db.Database, db.User, db.Password))
	db.DSN = fmt.Sprintf("%s:%s@tcp(%s)/%s", db.User, db.Password, addr, db.Database)
	return db
}

// postgresBin finds a PostgreSQL server binary: the Debian packages keep
// them in /usr/lib/postgresql/<version>/bin, off PATH.
func postgresBin(tb testing.TB, name string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.Reverse(dirs) // the newest version first
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return need(tb, name, "postgresql")
}

// Postgres runs initdb (password authentication, scram-sha-256) and the
// server as the postgres user through setpriv, then creates database
// "patrol" owned by user "patrol".
func Postgres(tb testing.TB) *DB {
	tb.Helper()
	needRoot(tb, "to run PostgreSQL as the postgres user")
	setpriv := need(tb, "setpriv", "util-linux")
	initdb := postgresBin(tb, "initdb")
	postgres := filepath.Join(filepath.Dir(initdb), "postgres")
	if _, err := os.Stat(postgres); err != nil {
		postgres = postgresBin(tb, "postgres")
	}
	psql := need(tb, "psql", "postgresql, through postgresql-client")
	dir := tempDir(tb, "postgres")
	adminPW := password()
	writeFile(tb, filepath.Join(dir, "pwfile"), adminPW+"\n")
	asPostgres := []string{setpriv, "--reuid=postgres", "--regid=postgres", "--init-groups", "--"}
	run(tb, nil, "chown", "-R", "postgres:postgres", dir)
	data := filepath.Join(dir, "data")
	run(tb, nil, append(asPostgres, initdb, "-D", data, "-U", "postgres", "--auth=scram-sha-256",
		"--pwfile="+filepath.Join(dir, "pwfile"), "--no-sync", "-E", "UTF8", "--locale=C")...)
	addr := loopback.UnusedAddr(tb)
	// SIGINT is PostgreSQL's fast shutdown: it does not wait for clients.
	s := start(tb, "postgres", dir, addr, syscall.SIGINT, append(asPostgres, postgres, "-D", data,
		"-p", port(addr), "-k", dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "shared_buffers=16MB", "-c", "max_connections=20")...)
	db := &DB{Server: s, User: "patrol", Password: password(), Database: "patrol"}
	env := []string{"PGPASSWORD=" + adminPW, "PGCONNECT_TIMEOUT=5"}
	admin := []string{psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", port(addr), "-U", "postgres", "-d", "postgres"}
	// The port accepts before the server takes logins: retry until it does.
	s.waitFor(tb, cmdReady(env, append(admin, "-c", "SELECT 1")...))
	run(tb, env, append(admin, "-c", fmt.Sprintf("CREATE USER %s PASSWORD '%s'", db.User, db.Password))...)
	run(tb, env, append(admin, "-c", fmt.Sprintf("CREATE DATABASE %s OWNER %s", db.Database, db.User))...)
	db.DSN = fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", db.User, db.Password, addr, db.Database)
	return db
}
