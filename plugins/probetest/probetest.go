// Package probetest is the test harness of the probe plugins: it moves a
// test binary into its own network namespace, builds plugin binaries for
// real and lays out a verified plugin directory. Its own tests run every
// built-in probe through plugins/host against loopback servers that speak
// each vendor's metadata protocol.
package probetest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

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

// envNetns marks a test binary already re-executed in a new namespace.
const envNetns = "GOPATROL_TEST_NETNS"

// InNetns is called first in TestMain. As root it re-executes the test
// binary under `unshare -n` with only a loopback interface, so that no
// request, even to a mistyped or default metadata address, can leave the
// machine: 169.254.169.254 and 100.100.100.200 are unreachable there.
// Without root (or where unshare is not allowed) it returns and the tests
// rely on their 127.0.0.1 overrides alone; under CI=true it then refuses
// to run instead.
func InNetns() {
	if os.Getenv(envNetns) != "" {
		return
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "probetest: CI runs as root: cannot run probe tests outside a network namespace")
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
		if os.Getenv("CI") == "true" {
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

// Build compiles each package into dir as gopatrol-probe-<name>, in one
// go build (which compiles them in parallel), and writes dir's manifest.
// pkgs maps name to import path.
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
	for _, p := range pkgs {
		args = append(args, p)
	}
	cmd := exec.Command("go", args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	for name, p := range pkgs {
		if err := os.Rename(filepath.Join(tmp, path.Base(p)), filepath.Join(dir, host.Prefix+name)); err != nil {
			return err
		}
	}
	return host.WriteManifest(dir)
}

// Dir returns a fresh plugin directory (0755, as root owns it) holding
// copies of the named binaries of built and a manifest for them.
func Dir(t testing.TB, built string, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(built, host.Prefix+n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, host.Prefix+n), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := host.WriteManifest(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}
