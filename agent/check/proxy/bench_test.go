package proxy

import (
	"context"
	"os/exec"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
	"github.com/gopatrol/gopatrol/agent/check/proxy/proxytest"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// BenchmarkProxyChecks times each proxy check against a healthy loopback
// proxy, side by side with the seed's manual steps (3.2: curl -v and
// openssl s_client | openssl x509 -text) against the same proxy.
func BenchmarkProxyChecks(b *testing.B) {
	p := proxytest.New(b)
	p.Module(probeMod, "v1.0.0", map[string]string{"probe.go": "package probe\n"})
	w := checktest.New(b)
	w.Setenv("GOPROXY="+p.URL()+",direct", "GOSUMDB=off", "SSL_CERT_FILE="+p.CAFile(), ProbeModuleEnv+"="+probeMod)
	env := w.Env()
	// Every iteration is a cold run: the roots are loaded again, as in a
	// new gopatrol process.
	forget := func() {
		rootsCache.Lock()
		rootsCache.key = ""
		rootsCache.Unlock()
	}
	for _, c := range Checks() {
		b.Run(c.ID, func(b *testing.B) {
			for b.Loop() {
				forget()
				if res := (check.Runner{}).Run(context.Background(), env, []check.Check{c})[0]; res.Status != check.Pass {
					b.Fatalf("%s: %s: %s", c.ID, res.Status, res.Summary)
				}
			}
		})
	}
	b.Run("both-concurrently", func(b *testing.B) {
		for b.Loop() {
			forget()
			for _, res := range (check.Runner{}).Run(context.Background(), env, Checks()) {
				if res.Status != check.Pass {
					b.Fatalf("%s: %s: %s", res.ID, res.Status, res.Summary)
				}
			}
		}
	})
	b.Run("seed-3.2-curl-openssl", func(b *testing.B) {
		script := `curl -sv --max-time 5 --cacert "$1" "$2" >/dev/null 2>&1; echo | timeout 5 openssl s_client -showcerts -connect "$3" 2>/dev/null | openssl x509 -noout -text >/dev/null`
		for b.Loop() {
			if out, err := exec.Command("bash", "-c", script, "seed", p.CAFile(), p.URL(), p.Addr()).CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	})
	b.Run("loadRoots-system", func(b *testing.B) {
		t := &check.Target{Root: "/"}
		for b.Loop() {
			if rs := loadRoots(t); rs.Count == 0 {
				testgate.Missing(b, "no system roots on this machine (make deps installs ca-certificates)")
			}
		}
	})
}
