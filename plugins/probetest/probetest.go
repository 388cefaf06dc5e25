package probetest

import (
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/gopatrol/gopatrol/internal/loopback"
	"github.com/gopatrol/gopatrol/plugins/host"
)

// TestNetAddr is a documentation address (TEST-NET-1, never routed)
// given to lo in the namespace: a non-loopback address for tests where
// loopback would be special-cased (proxies skip 127.0.0.1 anyway).
const TestNetAddr = "192.0.2.10"

// SilentAddr, in the namespace, is routed to a tap device without
// carrier: a SYN sent there is never answered nor refused, like a
// link-local metadata address on a network that drops it.
const SilentAddr = "198.51.100.2"

// HaveSilent reports whether SilentAddr is set up (it needs the network
// namespace and tun support in the kernel).
func HaveSilent() bool {
	if os.Getenv(envNetns) == "" {
		return false
	}
	_, err := net.InterfaceByName("silent0")
	return err == nil
}

// Required reports whether a missing capability (root, network
// namespaces, tun) must fail the tests instead of skipping them: on CI
// (CI=true) and wherever GOPATROL_REQUIRE_BPF=1 says the machine has all.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("GOPATROL_REQUIRE_BPF") == "1"
}

// Skip skips t for reason, or fails it when Required: no silent skip on a
// machine that is meant to run everything.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s (a failure, not a skip: GOPATROL_REQUIRE_BPF=1 or CI=true)", reason)
	}
	t.Skip(reason)
}

// envNetns marks a test binary already re-executed in a new namespace.
const envNetns = "GOPATROL_TEST_NETNS"

// InNetns is called first in TestMain. As root it re-executes the test
// binary under `unshare -n` with only a loopback interface, so that no
// request, even to a mistyped or default metadata address, can leave the
// machine: 169.254.169.254 and 100.100.100.200 are unreachable there.
// Without root (or where unshare is not allowed) it returns and the tests
// rely on their 127.0.0.1 overrides alone; when Required it then refuses
// to run instead.
func InNetns() {
	if os.Getenv(envNetns) != "" {
		return
	}
	if os.Geteuid() != 0 {
		if Required() {
			fmt.Fprintln(os.Stderr, "probetest: not root, and GOPATROL_REQUIRE_BPF=1 or CI=true: cannot run probe tests outside a network namespace")
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "probetest: not root: running without a private network namespace (endpoints are overridden to 127.0.0.1)")
		return
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		fmt.Fprintln(os.Stderr, "probetest: unshare not found (apt-get install util-linux):", err)
		os.Exit(1)
	}
	// Containers without CAP_SYS_ADMIN cannot unshare: say so plainly
	// rather than failing inside sh.
	if out, err := exec.Command(unshare, "--net", "--", "sh", "-c", "ip link set lo up").CombinedOutput(); err != nil {
		msg := fmt.Sprintf("probetest: cannot make a network namespace (unshare -n, ip from iproute2): %v: %s", err, strings.TrimSpace(string(out)))
		if Required() {
			fmt.Fprintln(os.Stderr, msg)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, msg+"; running without it (endpoints are overridden to 127.0.0.1)")
		return
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "probetest:", err)
		os.Exit(1)
	}
	setup := `ip link set lo up && ip addr add ` + TestNetAddr + `/32 dev lo && ` +
		`{ ip tuntap add dev silent0 mode tap && ip addr add 198.51.100.1/24 dev silent0 && ip link set silent0 up || true; } && ` +
		`exec "$0" "$@"`
	args := append([]string{unshare, "--net", "--", "sh", "-c", setup, self}, os.Args[1:]...)
	env := append(os.Environ(), envNetns+"=1")
	err = syscall.Exec(unshare, args, env)
	fmt.Fprintln(os.Stderr, "probetest: exec unshare -n:", err)
	os.Exit(1)
}

// Builtin is the multi-call binary that serves gopatrol's own probes
// under the names in BuiltinNames (make build ships it so).
const Builtin = "github.com/gopatrol/gopatrol/cmd/gopatrol-probes"

// BuiltinNames are the built-in probes, the names Builtin answers to.
var BuiltinNames = []string{"aws", "alibaba", "gcp", "azure", "openshift"}

// Builtins maps every built-in probe's name to Builtin, for Build and
// Main: one binary, five names.
func Builtins() map[string]string {
	m := make(map[string]string, len(BuiltinNames))
	for _, n := range BuiltinNames {
		m[n] = Builtin
	}
	return m
}

// Build compiles each package into dir as gopatrol-probe-<name>, in one
// go build (which compiles them in parallel), and writes dir's manifest.
// pkgs maps name to import path; names that share a package (a
// multi-call binary) become hard links to one file, as make build
// installs them.
func Build(dir string, pkgs map[string]string) error {
	tmp, err := os.MkdirTemp("", "probebuild")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// Stripped like `make build`, so sizes (and hashing times) match;
	// without -trimpath, which would recompile every dependency apart
	// from the test binary's on a cold cache.
	args := []string{"build", "-ldflags=-s -w", "-o", tmp + "/"}
	for _, p := range slices.Sorted(maps.Values(pkgs)) {
		if !slices.Contains(args, p) {
			args = append(args, p)
		}
	}
	cmd := exec.Command("go", args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	first := map[string]string{} // package to the file its first name got
	for _, name := range slices.Sorted(maps.Keys(pkgs)) {
		p, dst := pkgs[name], filepath.Join(dir, host.Prefix+name)
		if f, ok := first[p]; ok {
			err = os.Link(f, dst)
		} else {
			first[p] = dst
			err = os.Rename(filepath.Join(tmp, path.Base(p)), dst)
		}
		if err != nil {
			return err
		}
	}
	return host.WriteManifest(dir)
}

// Main is the TestMain of every package whose tests run plugin binaries:
// it builds pkgs (name to import path) once into a temporary directory,
// sets *built to it, runs the tests and removes the directory. Tests then
// lay out plugin directories from *built with Dir.
func Main(m *testing.M, pkgs map[string]string, built *string) {
	if fuzzWorker() {
		// A fuzz worker runs only a Fuzz target, which needs no plugin
		// binary: building them in every worker would cost seconds each.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "probebuilt")
	if err != nil {
		fmt.Fprintln(os.Stderr, "probetest:", err)
		os.Exit(1)
	}
	if err := Build(dir, pkgs); err != nil {
		fmt.Fprintln(os.Stderr, "probetest:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	*built = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fuzzWorker reports whether this test binary is one of the worker
// processes of `go test -fuzz`.
func fuzzWorker() bool {
	return slices.ContainsFunc(os.Args[1:], func(a string) bool { return strings.HasPrefix(a, "-test.fuzzworker") })
}

// Dir returns a fresh plugin directory (0755, as root owns it) holding
// copies of the named binaries of built and a manifest for them. Names
// that are hard links to one file in built are so in the directory too,
// as make build installs the built-in probes.
func Dir(t testing.TB, built string, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	copied := map[uint64]string{} // inode in built to its copy in dir
	for _, n := range names {
		src, dst := filepath.Join(built, host.Prefix+n), filepath.Join(dir, host.Prefix+n)
		fi, err := os.Stat(src)
		if err != nil {
			t.Fatal(err)
		}
		ino := fi.Sys().(*syscall.Stat_t).Ino
		if f, ok := copied[ino]; ok {
			if err := os.Link(f, dst); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
		copied[ino] = dst
	}
	if err := host.WriteManifest(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// OffCloud is the environment of a node on no cloud for the built-in
// probes: every metadata endpoint a closed loopback port, the in-cluster
// variables unset, proxies pointed at the closed port (the probes must
// ignore them). The real link-local addresses are never dialled.
func OffCloud(tb testing.TB) []string {
	closed := loopback.UnusedAddr(tb)
	return []string{
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=http://" + closed,
		"GOPATROL_ALIBABA_METADATA_ENDPOINT=http://" + closed,
		"GCE_METADATA_HOST=" + closed,
		"GOPATROL_AZURE_IMDS_ENDPOINT=http://" + closed,
		"KUBERNETES_SERVICE_HOST=", "KUBERNETES_SERVICE_PORT=",
		"HTTP_PROXY=http://" + closed, "http_proxy=http://" + closed, "NO_PROXY=", "no_proxy=",
	}
}
