package metadata_test

import (
	"os"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/plugins/sdk/metadata"
)

// An endpoint override comes from the environment: whatever it holds,
// Endpoint must not panic, must name the variable when it refuses, and
// must only accept an http(s) URL with a host.
func FuzzEndpoint(f *testing.F) {
	for _, seed := range []string{"", "127.0.0.1:8080", "http://169.254.169.254/", "https://[::1]:443/x/",
		"ftp://x", "http://", "://", "http://a b", "host:port:extra", "http://user:pass@h/", "%zz", "\x00"} {
		f.Add(seed)
	}
	const env = "FUZZ_METADATA_ENDPOINT"
	f.Fuzz(func(t *testing.T, raw string) {
		if strings.ContainsRune(raw, 0) {
			return // not a possible environment value
		}
		os.Setenv(env, raw)
		defer os.Unsetenv(env)
		u, err := metadata.Endpoint(env, "http://169.254.169.254")
		if err != nil {
			if !strings.Contains(err.Error(), env+"=") {
				t.Fatalf("error %q does not name %s", err, env)
			}
			return
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.HasSuffix(u.Path, "/") {
			t.Fatalf("Endpoint(%q) = %v: want http(s)://host without a trailing slash", raw, u)
		}
	})
}
