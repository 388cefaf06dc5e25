package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/gopatrol/gopatrol/agent/check"
)

// DefaultProbeModule is asked of every proxy unless GOPATROL_PROBE_MODULE
// names another: a module every public proxy and most mirrors hold.
const DefaultProbeModule = "golang.org/x/mod"

// ProbeModuleEnv names the variable that sets the probe module, read from
// the target's environment and then from gopatrol's own.
const ProbeModuleEnv = "GOPATROL_PROBE_MODULE"

var protocolCheck = check.Check{
	ID:      "proxy.protocol",
	Title:   "each GOPROXY entry answers the module proxy protocol",
	Source:  "3.2",
	Timeout: 3 * requestTimeout,
	Run:     runProtocol,
}

// answer is how one proxy answered for the probe module.
type answer int

const (
	answerOK       answer = iota
	answerNotFound        // 404 or 410: the go command tries the next entry
	answerError           // anything else: the go command stops, unless "|"
)

func probeModule(t *check.Target) (string, error) {
	mod := t.Getenv(ProbeModuleEnv)
	if mod == "" {
		mod = os.Getenv(ProbeModuleEnv)
	}
	if mod == "" {
		return DefaultProbeModule, nil
	}
	if err := module.CheckPath(mod); err != nil {
		return "", fmt.Errorf("%s=%q is not a module path (%v); set it to a module every proxy should hold, for example %s", ProbeModuleEnv, mod, err, DefaultProbeModule)
	}
	return mod, nil
}

func runProtocol(ctx context.Context, env *check.Env) check.Result {
	t, tc := env.Target, env.Toolchain
	goproxy := tc.Get("GOPROXY")
	mod, err := probeModule(t)
	if err != nil {
		return check.Errorf("%v", err).With(ProbeModuleEnv, t.Getenv(ProbeModuleEnv)).WithFix("export %s=%s", ProbeModuleEnv, DefaultProbeModule)
	}
	entries := proxyEntries(goproxy)
	// One malformed entry makes the go command reject the whole list.
	for _, e := range entries {
		if e.Err != nil {
			return check.Failf("%v: the go command rejects the whole GOPROXY list", e.Err).With("GOPROXY", goproxy).
				WithFix("go env -w GOPROXY=<https://host[/path]>,direct (correct the entry)")
		}
	}

	var probed []int
	for i, e := range entries {
		if e.Err == nil && e.Special == "" {
			probed = append(probed, i)
		}
	}
	if len(probed) == 0 {
		return check.Skipf("GOPROXY=%q names no proxy to ask", goproxy).With("GOPROXY", goproxy)
	}

	rs := targetRoots(t)
	client := newClient(t, rs)
	defer client.CloseIdleConnections()
	results := make([]finding, len(entries))
	answers := make([]answer, len(entries))
	var wg sync.WaitGroup
	for _, i := range probed {
		wg.Go(func() { answers[i], results[i] = probe(ctx, client, t, entries[i], mod) })
	}
	wg.Wait()

	// Walk the list as cmd/go's TryProxies does to find where the go
	// command would get the module from, or where it would give up.
	var findings []finding
	outcome, status := "", check.Pass
	for i, e := range entries {
		if outcome != "" {
			if results[i].Entry.Var != "" {
				findings = append(findings, results[i])
			} else {
				findings = append(findings, finding{Status: check.Pass, Entry: e, Detail: "not reached"})
			}
			continue
		}
		switch {
		case e.Special == "off":
			outcome, status = fmt.Sprintf("no proxy before \"off\" serves %s: the go command cannot download it", mod), check.Fail
			findings = append(findings, finding{Status: check.Pass, Entry: e, Detail: "off: the go command stops here"})
		case e.Special == "direct":
			outcome, status = fmt.Sprintf("no proxy serves %s: the go command falls back to direct (version control)", mod), check.Warn
			findings = append(findings, finding{Status: check.Pass, Entry: e, Detail: "direct: version control, not probed"})
		default:
			findings = append(findings, results[i])
			switch answers[i] {
			case answerOK:
				outcome = "ok"
			case answerError:
				if !e.FallBackOnError {
					outcome, status = fmt.Sprintf("the go command stops at %s (an error other than 404/410 after a \",\")", e.Label()), check.Fail
				}
			}
		}
	}
	if outcome == "" {
		outcome, status = fmt.Sprintf("no GOPROXY entry serves %s: the go command cannot download it", mod), check.Fail
	}

	r := entriesResult(findings, fmt.Sprintf("%d proxy(ies) answer the module proxy protocol for %s", len(probed), mod))
	if outcome == "ok" && r.Status == check.Fail {
		// The module comes from an earlier entry; the broken one is
		// only a fallback.
		r.Status = check.Warn
	}
	if outcome != "ok" {
		r.Status = status
		r.Summary = outcome + "; " + r.Summary
	}
	r = r.With("probe module", mod+" (set "+ProbeModuleEnv+" to probe another)")
	if pat := firstNonEmpty(tc.Get("GONOPROXY"), tc.Get("GOPRIVATE")); pat != "" && module.MatchPrefixPatterns(pat, mod) {
		r = r.With("GONOPROXY", fmt.Sprintf("%s matches %s: the go command fetches it directly, not from these proxies", pat, mod))
	}
	return r
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// reply is one HTTP (or file) answer.
type reply struct {
	status int
	ctype  string
	body   []byte
	err    error
}

func fetch(ctx context.Context, client *http.Client, t *check.Target, e entry, rel string) reply {
	if e.URL.Scheme == "file" {
		data, err := t.ReadFile(strings.TrimSuffix(e.URL.Path, "/") + "/" + rel)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return reply{status: http.StatusNotFound}
		case err != nil:
			return reply{err: err}
		}
		return reply{status: http.StatusOK, body: data}
	}
	u := strings.TrimSuffix(e.URL.String(), "/") + "/" + rel
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return reply{err: err}
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return reply{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: body, err: err}
}

// probe asks e for <mod>/@v/list and <mod>/@latest.
func probe(ctx context.Context, client *http.Client, t *check.Target, e entry, mod string) (answer, finding) {
	esc, _ := module.EscapePath(mod) // mod passed module.CheckPath
	var list, latest reply
	var wg sync.WaitGroup
	wg.Go(func() { list = fetch(ctx, client, t, e, esc+"/@v/list") })
	wg.Go(func() { latest = fetch(ctx, client, t, e, esc+"/@latest") })
	wg.Wait()

	f := finding{Entry: e}
	// listURL names the request in the report: Target hides a password.
	listURL := strings.TrimSuffix(e.Target(), "/") + "/" + esc + "/@v/list"
	a, what, fix := judge(list, mod, e)
	if a != answerOK {
		f.Status, f.Detail = check.Fail, "GET "+listURL+": "+what
		f.Summary, f.Fix = e.Label()+": "+what, fix
		if a == answerNotFound {
			// The go command moves on; whether that rescues the build
			// is decided by the walk over the list.
			f.Status = check.Warn
		}
		return a, f
	}
	versions := versionLines(list.body)
	detail := []string{fmt.Sprintf("GET %s: %d version(s)", listURL, len(versions))}
	if len(versions) > 0 {
		semver.Sort(versions)
		detail[0] += ", highest " + versions[len(versions)-1]
	}
	la, lwhat, lfix := judge(latest, mod, e)
	switch {
	case la == answerOK:
		var info struct{ Version string }
		if err := json.Unmarshal(latest.body, &info); err != nil || !semver.IsValid(info.Version) {
			f.Status = check.Fail
			f.Summary = fmt.Sprintf("%s: @latest for %s is not a JSON version info (%q)", e.Label(), mod, check.FirstLine(string(latest.body)))
			f.Fix = "go env -w GOPROXY=<a module proxy>,direct (see go help goproxy for the protocol)"
			f.Detail = strings.Join(append(detail, "@latest: "+f.Summary), "; ")
			return answerError, f
		}
		detail = append(detail, "@latest: "+info.Version)
	case la == answerNotFound && len(versions) > 0:
		// The go command uses @latest only when the list is empty.
		detail = append(detail, fmt.Sprintf("@latest: %d %s, which is fine: the go command uses the list", latest.status, http.StatusText(latest.status)))
	default:
		f.Status, f.Summary, f.Fix = check.Fail, e.Label()+": @latest: "+lwhat, lfix
		f.Detail = strings.Join(append(detail, "@latest: "+lwhat), "; ")
		return la, f
	}
	if bad := invalidVersionLines(list.body); len(bad) > 0 {
		f.Status = check.Fail
		f.Summary = fmt.Sprintf("%s: @v/list for %s holds lines that are not versions: %q", e.Label(), mod, bad)
		f.Fix = "go env -w GOPROXY=<a module proxy>,direct (see go help goproxy for the protocol)"
		f.Detail = strings.Join(append(detail, f.Summary), "; ")
		return answerError, f
	}
	f.Status, f.Detail = check.Pass, strings.Join(detail, "; ")
	return answerOK, f
}

// judge explains one reply the way a user needs it: what the status means
// to the go command and what to change.
func judge(r reply, mod string, e entry) (answer, string, string) {
	if r.err != nil {
		var cve *tls.CertificateVerificationError
		if errors.As(r.err, &cve) {
			return answerError, fmt.Sprintf("TLS verification failed: %v", cve.Err), "fix <what proxy.tls reports> first (gopatrol check --only proxy.tls)"
		}
		return answerError, fmt.Sprintf("no answer: %v", unwrapURL(r.err)), fmt.Sprintf("check that %s is reachable (firewall, DNS, HTTPS_PROXY)", e.URL.Host)
	}
	body := check.FirstLine(string(r.body))
	switch code := r.status; {
	case code == http.StatusOK:
		if strings.Contains(r.ctype, "html") || bytes.HasPrefix(bytes.TrimSpace(r.body), []byte("<")) {
			return answerError, fmt.Sprintf("200 with an HTML page (%q), not the module proxy protocol: a login page, a captive portal or a plain web server answers at this URL", truncate(body, 80)),
				fmt.Sprintf("point %s at <the proxy's module endpoint> (for a repository manager, the Go repository's URL; check it with curl %s/%s/@v/list)", e.Var, strings.TrimSuffix(e.Target(), "/"), mustEscape(mod))
		}
		return answerOK, "", ""
	case code == http.StatusNotFound:
		return answerNotFound, fmt.Sprintf("404 Not Found (%q): the proxy does not have %s; for a private module the go command must not ask a proxy", truncate(body, 80), mod),
			fmt.Sprintf("ask <the proxy's operator>, or export %s=<a module this proxy serves> (if %s is private, go env -w GOPRIVATE=%s makes the go command fetch it directly)", ProbeModuleEnv, mod, privatePattern(mod))
	case code == http.StatusGone:
		return answerNotFound, fmt.Sprintf("410 Gone (%q): the proxy refuses to serve %s (proxies answer 410 for modules they will not fetch: private, blocked or removed)", truncate(body, 80), mod),
			fmt.Sprintf("ask <the proxy's operator> why it refuses %s (if it is private, go env -w GOPRIVATE=%s makes the go command fetch it directly)", mod, privatePattern(mod))
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return answerError, fmt.Sprintf("%d %s (%q): the proxy wants credentials", code, http.StatusText(code), truncate(body, 80)),
			fmt.Sprintf("put the credentials for %s in ~/.netrc (machine %s login ... password ...) or configure GOAUTH", e.URL.Hostname(), e.URL.Hostname())
	case code >= 500:
		return answerError, fmt.Sprintf("%d %s (%q): the proxy failed (it is broken or cannot reach its upstream); after a \",\" the go command stops here, after a \"|\" it tries the next entry", code, http.StatusText(code), truncate(body, 80)),
			fmt.Sprintf("ask <the operator of %s> to fix it (meanwhile a fallback keeps builds going: export GOPROXY='%s|direct')", e.URL.Host, e.Raw)
	default:
		return answerError, fmt.Sprintf("%d %s (%q): not an answer of the module proxy protocol", code, http.StatusText(code), truncate(body, 80)),
			fmt.Sprintf("check the URL in %s: curl -v %s/%s/@v/list", e.Var, strings.TrimSuffix(e.Target(), "/"), mustEscape(mod))
	}
}

func versionLines(body []byte) []string {
	var vs []string
	for line := range strings.Lines(string(body)) {
		if f := strings.Fields(line); len(f) > 0 && semver.IsValid(f[0]) {
			vs = append(vs, f[0])
		}
	}
	return vs
}

func invalidVersionLines(body []byte) []string {
	var bad []string
	for line := range strings.Lines(string(body)) {
		if f := strings.Fields(line); len(f) > 0 && !semver.IsValid(f[0]) {
			bad = append(bad, truncate(strings.TrimSpace(line), 40))
			if len(bad) == 3 {
				break
			}
		}
	}
	return bad
}

// privatePattern suggests a GOPRIVATE pattern: the module's host and first
// path element, as organisations usually scope them.
func privatePattern(mod string) string {
	parts := strings.SplitN(mod, "/", 3)
	if len(parts) >= 2 {
		return parts[0] + "/" + parts[1]
	}
	return mod
}

func mustEscape(mod string) string {
	esc, err := module.EscapePath(mod)
	if err != nil {
		return mod
	}
	return esc
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
