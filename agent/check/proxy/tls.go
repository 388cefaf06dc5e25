package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

// expiryWarn is how close to expiry a certificate gets a warning.
const expiryWarn = 14 * 24 * time.Hour

var tlsCheck = check.Check{
	ID:      "proxy.tls",
	Title:   "GOPROXY and GOSUMDB hosts present certificates the system roots trust",
	Source:  "3.2",
	Timeout: 3 * requestTimeout,
	Run:     runTLS,
}

// finding is what one check concluded about one entry.
type finding struct {
	Status  check.Status
	Entry   entry
	Detail  string // evidence value
	Summary string // one clause for the summary; "" for a pass
	Fix     string
}

func runTLS(ctx context.Context, env *check.Env) check.Result {
	t, tc := env.Target, env.Toolchain
	entries := proxyEntries(tc.Get("GOPROXY"))
	if e, ok := sumdbEntry(tc.Get("GOSUMDB")); ok {
		entries = append(entries, e)
	}
	var dial []entry
	var findings []finding
	for _, e := range entries {
		switch {
		case e.Err != nil:
			findings = append(findings, finding{Status: check.Fail, Entry: e, Detail: e.Err.Error(), Summary: e.Err.Error(),
				Fix: fmt.Sprintf("go env -w %s=<https://host[/path]> (entries are https://host[/path], \"direct\" or \"off\")", e.Var)})
		case e.Special != "":
			findings = append(findings, finding{Status: check.Pass, Entry: e, Detail: "not dialled: " + specialMeaning(e)})
		case e.URL.Scheme != "https":
			findings = append(findings, finding{Status: check.Pass, Entry: e, Detail: "not dialled: " + e.URL.Scheme + " is not TLS"})
		default:
			dial = append(dial, e)
		}
	}
	if len(dial) == 0 && !slices.ContainsFunc(findings, func(f finding) bool { return f.Status == check.Fail }) {
		r := check.Skipf("no https entry in GOPROXY=%q or GOSUMDB=%q", tc.Get("GOPROXY"), tc.Get("GOSUMDB"))
		for _, f := range findings {
			r = r.With(f.Entry.Key(), f.Entry.Target()+": "+f.Detail)
		}
		return r
	}

	if len(dial) == 0 {
		return entriesResult(findings, "")
	}
	rs := targetRoots(t)
	client := newClient(t, rs)
	defer client.CloseIdleConnections()
	dialled := make([]finding, len(dial))
	var wg sync.WaitGroup
	for i, e := range dial {
		wg.Go(func() { dialled[i] = handshake(ctx, client, t, e, rs) })
	}
	wg.Wait()
	findings = append(findings, dialled...)

	r := entriesResult(findings, fmt.Sprintf("%d https endpoint(s) verified against the system roots", len(dial)))
	r = r.With("roots", rs.Describe())
	if pc := proxyConfig(t); pc.HTTPSProxy != "" {
		r = r.With("HTTPS_PROXY", fmt.Sprintf("%s (NO_PROXY=%q): the go command tunnels https through it, and so does this check", pc.HTTPSProxy, pc.NoProxy))
	}
	if rs.Count == 0 {
		r.Fix = strings.TrimSpace(r.Fix + " The trust store is empty: install the CA bundle (apt-get install ca-certificates) or set SSL_CERT_FILE to a PEM bundle.")
	}
	return r
}

func specialMeaning(e entry) string {
	switch {
	case e.Var == "GOSUMDB":
		return "GOSUMDB=off: downloaded modules are not checked against a checksum database"
	case e.Special == "off":
		return "off: the go command downloads nothing past this entry"
	default:
		return "direct: the go command fetches from version control directly"
	}
}

// handshake makes one HEAD request to e, verifying with rs, and reads the
// verdict off the TLS state or the verification error. The HTTP status does
// not matter here; proxy.protocol judges that.
func handshake(ctx context.Context, client *http.Client, t *check.Target, e entry, rs roots) finding {
	f := finding{Entry: e}
	var notes []string
	if via := viaProxy(t, e.URL); via != "" {
		notes = append(notes, "via HTTPS_PROXY "+via)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, e.URL.String(), nil)
	if err != nil {
		f.Status, f.Detail, f.Summary = check.Fail, err.Error(), err.Error()
		return f
	}
	// The verdict is the handshake with this host (not an https proxy's,
	// not a redirect target's), even when the HEAD after it fails.
	host := e.URL.Hostname()
	var mu sync.Mutex
	var state *tls.ConnectionState
	trace := &httptrace.ClientTrace{TLSHandshakeDone: func(cs tls.ConnectionState, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil && state == nil && len(cs.VerifiedChains) > 0 && cs.VerifiedChains[0][0].VerifyHostname(host) == nil {
			state = &cs
		}
	}}
	resp, err := client.Do(req.WithContext(httptrace.WithClientTrace(ctx, trace)))
	if resp != nil {
		resp.Body.Close()
	}
	mu.Lock()
	st := state
	mu.Unlock()
	var cve *tls.CertificateVerificationError
	switch {
	case st != nil:
		if err != nil {
			notes = append(notes, "the request after the handshake failed: "+err.Error())
		}
		return verified(f, *st, notes)
	case err == nil:
		// Redirected to http://, or answered by something this client
		// did not handshake with: nothing to judge.
		f.Status, f.Detail = check.Pass, strings.Join(append(notes, "answered without a verified TLS chain for "+host+" (final URL "+resp.Request.URL.Redacted()+")"), "; ")
		return f
	case errors.As(err, &cve):
		return rejected(f, cve, notes)
	}
	return unreachable(f, err, notes)
}

// verified is the finding for a chain that verified: its expiry decides.
func verified(f finding, st tls.ConnectionState, notes []string) finding {
	e := f.Entry
	chain := st.VerifiedChains[0]
	first := chain[0]
	for _, c := range chain {
		if c.NotAfter.Before(first.NotAfter) {
			first = c
		}
	}
	left := time.Until(first.NotAfter)
	days := int(left.Hours() / 24)
	notes = append(notes, fmt.Sprintf("verified; %s; expires in %d days (%s: %s)", tls.VersionName(st.Version), days, first.Subject, first.NotAfter.UTC().Format(time.DateOnly)))
	notes = append(notes, "chain: "+describeChain(chain))
	f.Status, f.Detail = check.Pass, strings.Join(notes, "; ")
	if left < expiryWarn {
		f.Status = check.Warn
		f.Summary = fmt.Sprintf("%s: certificate %s expires in %d days (%s)", e.Label(), first.Subject, days, first.NotAfter.UTC().Format(time.DateOnly))
		f.Fix = fmt.Sprintf("renew <the certificate of %s> before %s", e.URL.Host, first.NotAfter.UTC().Format(time.DateOnly))
	}
	return f
}

// rejected is the finding for a chain that did not verify, worded by why.
func rejected(f finding, cve *tls.CertificateVerificationError, notes []string) finding {
	e, host := f.Entry, f.Entry.URL.Hostname()
	presented := cve.UnverifiedCertificates
	notes = append(notes, "error: "+cve.Error())
	if len(presented) > 0 {
		notes = append(notes, "presented: "+describeChain(presented))
	}
	f.Status, f.Detail = check.Fail, strings.Join(notes, "; ")
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(cve.Err, &ua) && len(presented) > 0:
		top := presented[len(presented)-1]
		selfSigned := len(presented) == 1 && bytes.Equal(top.RawIssuer, top.RawSubject)
		what := "issuer " + top.Issuer.String()
		anchor := fmt.Sprintf("the CA certificate %q", top.Issuer.CommonName)
		if selfSigned {
			what = "self-signed certificate, issuer " + top.Issuer.String()
			anchor = fmt.Sprintf("the self-signed certificate %q itself (better: have the proxy use a CA-issued certificate)", top.Subject.CommonName)
		}
		f.Summary = fmt.Sprintf("%s: x509: certificate signed by unknown authority (%s not in the roots)", e.Label(), what)
		f.Fix = fmt.Sprintf("export SSL_CERT_FILE=<a PEM bundle that holds %s>, or add it to the system store (cp ca.pem /usr/local/share/ca-certificates/proxy-ca.crt && update-ca-certificates)", anchor)
	case errors.As(cve.Err, &he):
		f.Summary = fmt.Sprintf("%s: %s", e.Label(), he.Error())
		f.Fix = fmt.Sprintf("use <a name the certificate is valid for: %s> in %s, or reissue the certificate with %s in its subject alternative names", certNames(he.Certificate), e.Var, host)
	case errors.As(cve.Err, &ci) && ci.Reason == x509.Expired:
		f.Summary = fmt.Sprintf("%s: %s", e.Label(), ci.Error())
		f.Fix = fmt.Sprintf("renew <the certificate of %s> (expired %s; if it has not, this machine's clock is wrong: check `date`, enable NTP)", e.URL.Host, ci.Cert.NotAfter.UTC().Format(time.DateOnly))
	default:
		f.Summary = fmt.Sprintf("%s: %v", e.Label(), cve.Err)
		f.Fix = fmt.Sprintf("fix <the certificate chain of %s> (curl -v %s shows it)", e.URL.Host, e.URL)
	}
	return f
}

// unreachable is the finding for a request that failed before any
// verdict on the certificate: a host that could not be reached warns, any
// other failure (a plain-HTTP port, say) fails.
func unreachable(f finding, err error, notes []string) finding {
	e := f.Entry
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) || (errors.As(err, &opErr) && opErr.Op == "dial") || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		f.Status = check.Warn
		f.Detail = strings.Join(append(notes, "could not connect: "+err.Error()), "; ")
		f.Summary = fmt.Sprintf("%s: could not connect to %s, the certificate was not checked", e.Label(), hostPort(e.URL))
		f.Fix = fmt.Sprintf("make <%s reachable from here> (firewall, DNS, HTTPS_PROXY), then run gopatrol check --only proxy.tls again", hostPort(e.URL))
		return f
	}
	f.Status = check.Fail
	f.Detail = strings.Join(append(notes, "error: "+err.Error()), "; ")
	f.Summary = fmt.Sprintf("%s: TLS handshake failed: %v", e.Label(), unwrapURL(err))
	f.Fix = fmt.Sprintf("write <http://%s if it is a plain-HTTP proxy, else its TLS port> in %s", e.URL.Host, e.Var)
	return f
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// unwrapURL drops the "Head "url": " prefix that net/http adds.
func unwrapURL(err error) error {
	if u := errors.Unwrap(err); u != nil && strings.HasPrefix(err.Error(), "Head ") {
		return u
	}
	return err
}

func describeChain(chain []*x509.Certificate) string {
	var parts []string
	for i, c := range chain {
		parts = append(parts, fmt.Sprintf("[%d] subject %q issuer %q not after %s", i, c.Subject.String(), c.Issuer.String(), c.NotAfter.UTC().Format(time.DateOnly)))
	}
	return strings.Join(parts, ", ")
}

func certNames(c *x509.Certificate) string {
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no subject alternative names"
	}
	return strings.Join(names, ", ")
}

// entriesResult turns per-entry findings into one result with check.Combine,
// every entry as evidence.
func entriesResult(findings []finding, passSummary string) check.Result {
	fs := make([]check.Finding, len(findings))
	ev := make(map[string]string, len(findings))
	for i, f := range findings {
		fs[i] = check.Finding{Status: f.Status, Summary: f.Summary, Fix: f.Fix}
		ev[f.Entry.Key()] = f.Entry.Target() + ": " + f.Detail
	}
	return check.Combine(passSummary, fs, ev)
}
