package proxy

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

// The places crypto/x509 reads on Linux (root_linux.go): the first bundle
// file that exists, then every directory.
var (
	certFiles = []string{
		"/etc/ssl/certs/ca-certificates.crt",
		"/etc/pki/tls/certs/ca-bundle.crt",
		"/etc/ssl/ca-bundle.pem",
		"/etc/pki/tls/cacert.pem",
		"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
		"/etc/ssl/cert.pem",
	}
	certDirectories = []string{"/etc/ssl/certs", "/etc/pki/tls/certs"}
)

// roots is the trust store the target's go command would use.
type roots struct {
	Pool    *x509.CertPool
	Count   int      // distinct certificates
	Sources []string // the file and directories that contributed
	Env     string   // SSL_CERT_FILE / SSL_CERT_DIR as set on the target
	Err     error    // first read error other than "does not exist"
}

// Describe is the evidence line for the trust store.
func (r roots) Describe() string {
	s := fmt.Sprintf("%d certificates from %s (%s)", r.Count, strings.Join(r.Sources, ", "), r.Env)
	if len(r.Sources) == 0 {
		s = fmt.Sprintf("no certificates (%s)", r.Env)
	}
	if r.Err != nil {
		s += "; " + r.Err.Error()
	}
	return s
}

// rootsCache shares one load between proxy.tls and proxy.protocol, which
// run at the same time: parsing a few hundred certificates is most of their
// cost. Entries live for one run, not longer, so that the agent sees a
// changed trust store on its next patrol.
var rootsCache struct {
	sync.Mutex
	key string
	at  time.Time
	r   roots
}

const rootsTTL = 10 * time.Second

// targetRoots is loadRoots, shared for a few seconds between callers that
// ask for the same target and settings.
func targetRoots(t *check.Target) roots {
	key := strings.Join([]string{t.Root, t.Getenv("SSL_CERT_FILE"), t.Getenv("SSL_CERT_DIR")}, "\x00")
	rootsCache.Lock()
	defer rootsCache.Unlock()
	if rootsCache.key == key && time.Since(rootsCache.at) < rootsTTL {
		return rootsCache.r
	}
	r := loadRoots(t)
	rootsCache.key, rootsCache.at, rootsCache.r = key, time.Now(), r
	return r
}

// loadRoots loads the roots as crypto/x509's loadSystemRoots does on Linux,
// but for the target: its SSL_CERT_FILE and SSL_CERT_DIR, its files.
// x509.SystemCertPool cannot be used, since it reads this process's
// environment and filesystem, which are not the target's in the agent.
func loadRoots(t *check.Target) roots {
	r := roots{Pool: x509.NewCertPool()}
	seen := map[[32]byte]bool{}
	add := func(data []byte) int {
		n := 0
		for len(data) > 0 {
			var block *pem.Block
			block, data = pem.Decode(data)
			if block == nil {
				break
			}
			if block.Type != "CERTIFICATE" || len(block.Headers) != 0 {
				continue
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				continue
			}
			n++
			if h := sha256.Sum256(c.Raw); !seen[h] {
				seen[h] = true
				r.Pool.AddCert(c)
			}
		}
		return n
	}
	noteErr := func(err error) {
		if r.Err == nil && !errors.Is(err, fs.ErrNotExist) {
			r.Err = err
		}
	}

	files := certFiles
	envFile, envDir := t.Getenv("SSL_CERT_FILE"), t.Getenv("SSL_CERT_DIR")
	r.Env = "SSL_CERT_FILE unset"
	if envFile != "" {
		files = []string{envFile}
		r.Env = "SSL_CERT_FILE=" + envFile
	}
	for _, f := range files {
		data, err := t.ReadFile(f)
		if err != nil {
			if envFile != "" && errors.Is(err, fs.ErrNotExist) {
				// Go ignores it silently; the user wants to know.
				r.Err = fmt.Errorf("SSL_CERT_FILE %s: %w", envFile, err)
			}
			noteErr(err)
			continue
		}
		if add(data) > 0 {
			r.Sources = append(r.Sources, f)
		} else if envFile != "" {
			r.Err = fmt.Errorf("SSL_CERT_FILE %s holds no PEM certificates", envFile)
		}
		break
	}

	dirs := certDirectories
	r.Env += ", SSL_CERT_DIR unset"
	if envDir != "" {
		// OpenSSL and Go both separate SSL_CERT_DIR with ":".
		dirs = strings.Split(envDir, ":")
		r.Env = strings.Replace(r.Env, "SSL_CERT_DIR unset", "SSL_CERT_DIR="+envDir, 1)
	}
	for _, dir := range dirs {
		hdir, err := t.HostPath(dir)
		if err != nil {
			noteErr(err)
			continue
		}
		ents, err := os.ReadDir(hdir)
		if err != nil {
			noteErr(err)
			continue
		}
		n := 0
		for _, de := range ents {
			if isSameDirSymlink(hdir, de) {
				continue
			}
			if data, err := t.ReadFile(filepath.Join(dir, de.Name())); err == nil {
				n += add(data)
			}
		}
		if n > 0 {
			r.Sources = append(r.Sources, dir)
		}
	}
	r.Count = len(seen)
	return r
}

// isSameDirSymlink mirrors crypto/x509: links to a file in the same
// directory (the OpenSSL hash links) are skipped as duplicates. hostDir
// is the directory as this process opens it.
func isSameDirSymlink(hostDir string, de fs.DirEntry) bool {
	if de.Type()&fs.ModeSymlink == 0 {
		return false
	}
	target, err := os.Readlink(filepath.Join(hostDir, de.Name()))
	return err == nil && !strings.Contains(target, "/")
}
