package patrol

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"time"
)

type httpProbe struct {
	url     string
	measure string
	timeout time.Duration
	client  *http.Client
}

// Probe measures one GET: up (1 for a 2xx or 3xx answer, 0 otherwise, also
// when nothing answered), status (0 when nothing answered) or latency in
// seconds (unknown when nothing answered).
func (p httpProbe) Probe(ctx context.Context) []Sample {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return []Sample{{Err: fmt.Errorf("http target %q: %w", p.url, err)}}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		if p.measure == "latency" {
			return []Sample{{Err: err}}
		}
		return []Sample{{Value: 0, Message: err.Error()}}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	lat := time.Since(start).Seconds()
	msg := fmt.Sprintf("%s in %.3fs", resp.Status, lat)
	switch p.measure {
	case "status":
		return []Sample{{Value: float64(resp.StatusCode), Message: msg}}
	case "latency":
		return []Sample{{Value: lat, Message: msg}}
	}
	up := 0.0
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		up = 1
	}
	return []Sample{{Value: up, Message: msg}}
}

type dnsProbe struct {
	name     string
	measure  string
	timeout  time.Duration
	resolver *net.Resolver
}

// Probe resolves the name: up (1 with at least one address), latency in
// seconds, or the number of addresses.
func (p dnsProbe) Probe(ctx context.Context) []Sample {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	start := time.Now()
	addrs, err := p.resolver.LookupHost(ctx, p.name)
	lat := time.Since(start).Seconds()
	switch p.measure {
	case "latency":
		if err != nil {
			return []Sample{{Err: err}}
		}
		return []Sample{{Value: lat, Message: fmt.Sprintf("%d addresses in %.3fs", len(addrs), lat)}}
	case "addresses":
		if err != nil {
			return []Sample{{Value: 0, Message: err.Error()}}
		}
		return []Sample{{Value: float64(len(addrs)), Message: fmt.Sprint(addrs)}}
	}
	if err != nil || len(addrs) == 0 {
		msg := "no addresses"
		if err != nil {
			msg = err.Error()
		}
		return []Sample{{Value: 0, Message: msg}}
	}
	return []Sample{{Value: 1, Message: fmt.Sprintf("%d addresses in %.3fs", len(addrs), lat)}}
}

type tlsProbe struct {
	addr    string
	measure string
	timeout time.Duration
	roots   *x509.CertPool
}

// Probe handshakes with the endpoint and verifies its chain: days (until
// the first certificate of the verified chain expires; 0 when the chain
// does not verify, so that it breaches any sensible threshold) or up (1
// when it verifies).
func (p tlsProbe) Probe(ctx context.Context) []Sample {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	host, _, err := net.SplitHostPort(p.addr)
	if err != nil {
		return []Sample{{Err: fmt.Errorf("tls target %q: want host:port: %w", p.addr, err)}}
	}
	d := tls.Dialer{Config: &tls.Config{ServerName: host, RootCAs: p.roots, MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			return []Sample{{Value: 0, Message: "chain does not verify: " + verr.Err.Error()}}
		}
		return []Sample{{Err: err}}
	}
	defer conn.Close()
	state := conn.(*tls.Conn).ConnectionState()
	days := math.Inf(1)
	var first *x509.Certificate
	for _, chain := range state.VerifiedChains {
		for _, c := range chain {
			if left := time.Until(c.NotAfter).Hours() / 24; left < days {
				days, first = left, c
			}
		}
	}
	if first == nil {
		return []Sample{{Err: fmt.Errorf("tls %s: no verified chain", p.addr)}}
	}
	msg := fmt.Sprintf("%q expires %s (%.1f days)", first.Subject.CommonName, first.NotAfter.UTC().Format(time.DateOnly), days)
	if p.measure == "up" {
		return []Sample{{Value: 1, Message: msg}}
	}
	return []Sample{{Value: days, Message: msg}}
}
