package host

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/gopatrol/gopatrol/internal/atomicfile"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

const (
	// DefaultDir is where packages install probe plugins.
	DefaultDir = "/usr/lib/gopatrol/plugins"
	// Prefix starts the file name of every probe plugin.
	Prefix = "gopatrol-probe-"
	// ManifestName is the manifest in the plugin directory, in the
	// format of `sha256sum gopatrol-probe-* > SHA256SUMS`.
	ManifestName = "SHA256SUMS"
)

// Candidate is a plugin file found in the directory.
type Candidate struct {
	// Name is the probe's name: the file name without Prefix.
	Name string
	Path string
	// SHA256 is the file's digest (hex), Expected the manifest's.
	SHA256, Expected string
	// Err says why the plugin is refused; nil means verified.
	Err error
}

// Verified reports whether the plugin may run.
func (c Candidate) Verified() bool { return c.Err == nil }

// ErrRefused wraps every reason a plugin is refused.
var ErrRefused = errors.New("plugin refused")

func refuse(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, a...))
}

// Discover lists the gopatrol-probe-* files of dir and verifies each. The
// error is for a directory that cannot be used at all (missing, unsafe);
// a single bad plugin is a Candidate with Err set.
func Discover(dir, manifest string, owners []int) ([]Candidate, error) {
	return discover(dir, manifest, owners, true)
}

// discover with hash false checks everything but the digest, leaving it to
// go-plugin's SecureConfig at exec time: Open would otherwise read every
// binary twice, and the exec-time check is the one that counts.
func discover(dir, manifest string, owners []int, hash bool) ([]Candidate, error) {
	if manifest == "" {
		manifest = filepath.Join(dir, ManifestName)
	}
	if owners == nil {
		owners = DefaultOwners()
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("plugin directory: %w (set --plugin-dir)", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("plugin directory %s: not a directory", dir)
	}
	if err := safe(dir, fi, owners); err != nil {
		return nil, err
	}
	if err := safeParents(dir, owners); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("plugin directory: %w", err)
	}
	sums, manErr := readManifest(manifest, owners)
	var out []Candidate
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), Prefix) || len(e.Name()) == len(Prefix) {
			continue
		}
		c := Candidate{Name: strings.TrimPrefix(e.Name(), Prefix), Path: filepath.Join(dir, e.Name())}
		c.Err = verify(&c, sums, manErr, owners, hash)
		out = append(out, c)
	}
	out = append(out, missing(dir, sums)...)
	slices.SortFunc(out, func(a, b Candidate) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// missing reports every manifest entry whose file is not in dir: a
// plugin that was meant to be installed and is not, or a stale manifest.
func missing(dir string, sums map[string]string) []Candidate {
	var out []Candidate
	for _, name := range slices.Sorted(maps.Keys(sums)) {
		path := filepath.Join(dir, name)
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		out = append(out, Candidate{
			Name: strings.TrimPrefix(name, Prefix), Path: path, Expected: sums[name],
			Err: refuse("%s is listed in the manifest but does not exist: install it or remove its line", path),
		})
	}
	return out
}

func verify(c *Candidate, sums map[string]string, manErr error, owners []int, hash bool) error {
	fi, err := os.Lstat(c.Path)
	if err != nil {
		return refuse("%v", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return refuse("%s is a symlink: install the binary itself", c.Path)
	}
	if !fi.Mode().IsRegular() {
		return refuse("%s is not a regular file", c.Path)
	}
	if fi.Mode().Perm()&0o100 == 0 {
		return refuse("%s is not executable by its owner (chmod 0755 it)", c.Path)
	}
	if err := safe(c.Path, fi, owners); err != nil {
		return err
	}
	if manErr != nil {
		return manErr
	}
	want, ok := sums[filepath.Base(c.Path)]
	if !ok {
		return refuse("%s is not in the manifest: add its `sha256sum` line if you trust it", filepath.Base(c.Path))
	}
	c.Expected = want
	if !hash {
		return nil
	}
	sum, err := fileSHA256(c.Path)
	if err != nil {
		return refuse("%v", err)
	}
	c.SHA256 = sum
	if want != sum {
		return refuse("%s: sha256 %s, the manifest says %s: the binary was changed or the manifest is stale", c.Path, sum, want)
	}
	return nil
}

// safe refuses a file or directory that someone other than its trusted
// owner could replace.
func safe(path string, fi fs.FileInfo, owners []int) error {
	if fi.Mode().Perm()&0o022 != 0 {
		return refuse("%s is writable by group or others (mode %v): chmod go-w %s", path, fi.Mode().Perm(), path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && !slices.Contains(owners, int(st.Uid)) {
		return refuse("%s is owned by uid %d, not root or the agent's user (%v): chown it", path, st.Uid, owners)
	}
	return nil
}

// safeParents refuses a plugin directory that another user could replace
// through one of its parents: a parent writable by group or others
// without the sticky bit (with it, as on /tmp, others cannot rename or
// remove what they do not own), or owned by an untrusted user. The real
// path is checked, symlinks resolved.
func safeParents(dir string, owners []int) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("plugin directory: %w", err)
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return fmt.Errorf("plugin directory: %w", err)
	}
	for p := filepath.Dir(real); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("plugin directory %s: parent: %w", dir, err)
		}
		if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
			return refuse("%s, a parent of the plugin directory %s, is writable by group or others without the sticky bit (mode %v): whoever can write there can replace the plugins; chmod go-w %s or move the plugin directory",
				p, dir, fi.Mode(), p)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && !slices.Contains(owners, int(st.Uid)) {
			return refuse("%s, a parent of the plugin directory %s, is owned by uid %d, not root or the agent's user (%v): its owner can replace the plugins",
				p, dir, st.Uid, owners)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// DefaultOwners are the users a plugin, its directory and the manifest may
// belong to: root, and the user the agent runs as.
func DefaultOwners() []int {
	if uid := os.Geteuid(); uid != 0 {
		return []int{0, uid}
	}
	return []int{0}
}

func readManifest(path string, owners []int) (map[string]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, refuse("manifest: %v (write one: cd %s && sha256sum %s* > %s)", err, filepath.Dir(path), Prefix, ManifestName)
	}
	if err := safe(path, fi, owners); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, refuse("manifest: %v", err)
	}
	return ParseManifest(b, path)
}

// ParseManifest reads `sha256sum` output: "<hex>  <name>" or
// "<hex> *<name>" per line, # comments and blank lines ignored. As in
// sha256sum, the name is everything after the two-character separator,
// spaces included, so that every name it writes reads back the same.
func ParseManifest(b []byte, name string) (map[string]string, error) {
	sums := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if trimmed := strings.TrimSpace(line); trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		line = strings.TrimLeft(line, " \t")
		bad := refuse("%s:%d: want \"<sha256 hex>  <file name>\", got %q", name, n, line)
		if len(line) < 67 || line[64] != ' ' || (line[65] != ' ' && line[65] != '*') {
			return nil, bad
		}
		sum, file := line[:64], line[66:]
		if _, err := hex.DecodeString(sum); err != nil {
			return nil, bad
		}
		base, sum := filepath.Base(file), strings.ToLower(sum)
		if base == "/" || base == "." || base == ".." || strings.HasSuffix(file, "/") {
			return nil, refuse("%s:%d: %q names a directory, not a plugin", name, n, file)
		}
		if old, dup := sums[base]; dup && old != sum {
			return nil, refuse("%s:%d: %s is listed twice with different sums", name, n, base)
		}
		sums[base] = sum
	}
	return sums, sc.Err()
}

// WriteManifest writes dir's manifest for every gopatrol-probe-* in it,
// atomically: a temporary file in dir renamed over the manifest, so that
// a host reading it concurrently sees the old manifest or the new one,
// never half of one.
func WriteManifest(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("writing the manifest: %w", err)
	}
	var buf bytes.Buffer
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), Prefix) || !e.Type().IsRegular() {
			continue
		}
		sum, err := fileSHA256(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		fmt.Fprintf(&buf, "%s  %s\n", sum, e.Name())
	}
	return atomicfile.WriteFile(filepath.Join(dir, ManifestName), buf.Bytes(), 0o644)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
