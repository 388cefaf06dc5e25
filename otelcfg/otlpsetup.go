package otelcfg

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"time"
)

// otlpSetup is what both signals' OTLP exporters derive from an
// OTLPConfig: the parsed endpoint, the export timeout, the TLS config and
// the retry intervals.
type otlpSetup struct {
	u                      *url.URL
	timeout                time.Duration
	tls                    *tls.Config
	retryInitial, retryMax time.Duration
}

// setup derives the exporter settings of c; signal names the exporter in
// the error ("OTLP", "OTLP traces").
func (c OTLPConfig) setup(signal string) (otlpSetup, error) {
	s := otlpSetup{timeout: c.Timeout, tls: c.TLS}
	if s.timeout == 0 {
		s.timeout = defaultOTLPTimeout
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil || u.Host == "" {
		return s, fmt.Errorf("%s endpoint %q: want a URL such as https://collector:4317", signal, c.Endpoint)
	}
	s.u = u
	if s.tls == nil {
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	s.retryInitial, s.retryMax = min(100*time.Millisecond, s.timeout/10), min(2*time.Second, s.timeout/4)
	return s, nil
}
