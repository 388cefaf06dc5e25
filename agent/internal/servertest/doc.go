// Package servertest starts real servers for tests: Alertmanager,
// Prometheus, MariaDB and PostgreSQL from their Debian packages, each on
// 127.0.0.1 with a free port and its own temporary data directory, waited
// for until it answers (with a deadline), and killed with its process
// group and removed at t.Cleanup.
//
// A missing binary skips the test with the reason and the package to
// install, except under GOPATROL_REQUIRE_BPF=1 (CI) where it fails it:
// the same rule as bpf/bpftest.Need, which this package uses, since
// `make deps` installs every one of them.
//
// The database servers run as their own users (postgres through setpriv;
// mariadbd with --user=root), so the tests run as root.
package servertest
