package proxy

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/gopatrol/gopatrol/agent/check"
)

// Short on purpose: both proxy checks are in the default set, and a proxy
// that takes more than this to answer is itself worth reporting.
const (
	dialTimeout    = 2 * time.Second
	requestTimeout = 3 * time.Second
)

// proxyConfig is HTTPS_PROXY, HTTP_PROXY and NO_PROXY of the target, read
// the way net/http (and so the go command) reads them.
func proxyConfig(t *check.Target) *httpproxy.Config {
	get := func(k string) string {
		if v := t.Getenv(k); v != "" {
			return v
		}
		return t.Getenv(strings.ToLower(k))
	}
	return &httpproxy.Config{HTTPProxy: get("HTTP_PROXY"), HTTPSProxy: get("HTTPS_PROXY"), NoProxy: get("NO_PROXY")}
}

// newClient is an HTTP client that verifies against rs and goes through
// the target's HTTP(S)_PROXY like the go command, with CONNECT done by
// net/http. It keeps no connections: each check runs once.
func newClient(t *check.Target, rs roots) *http.Client {
	pf := proxyConfig(t).ProxyFunc()
	tr := &http.Transport{
		Proxy:               func(r *http.Request) (*url.URL, error) { return pf(r.URL) },
		DialContext:         (&net.Dialer{Timeout: dialTimeout}).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: rs.Pool},
		TLSHandshakeTimeout: dialTimeout,
		DisableKeepAlives:   true,
	}
	return &http.Client{Transport: tr, Timeout: requestTimeout}
}

// viaProxy names the HTTP proxy the go command would use to reach u, or "".
func viaProxy(t *check.Target, u *url.URL) string {
	p, err := proxyConfig(t).ProxyFunc()(u)
	if err != nil || p == nil {
		return ""
	}
	return p.Redacted()
}
