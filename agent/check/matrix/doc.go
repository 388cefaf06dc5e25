// Package matrix is the doctor's compatibility matrix: it holds the
// doctor to the rule that "healthy" means "builds work" on every Go
// installation people really run, not only on the official tarball of
// the newest release it was tuned on.
//
// The test builds each installation for real: every Go release from 1.21
// to the newest (the golang.org/toolchain modules that the go command
// itself downloads when it switches toolchains, through the GOPROXY that
// `go env` names, kept in a cache directory outside the repository so
// that only the first run downloads), the Go that Debian packages under
// /usr/lib/go-1.NN with links into /usr/share, a Go unpacked into a home
// directory and reached through a wrapper on PATH, and a toolchain that a
// module's `toolchain` line selects. In each it runs the real `go build`,
// `go test` and `go run` of a small module, then the doctor's default
// set, and asks that both agree: commands that work meet no failure and
// no warning (except the few documented ones that do not depend on the
// installation), commands that fail meet a failed check naming the cause.
//
// The non-test code is the small helper that finds and fetches the
// toolchains (Fetcher); everything else is in the tests.
package matrix
