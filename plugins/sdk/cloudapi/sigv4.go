package cloudapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// SigV4 signs AWS requests (Signature Version 4, header form) for one
// region and service.
type SigV4 struct {
	Region, Service string
}

const amzDate = "20060102T150405Z"

// Sign adds X-Amz-Date, X-Amz-Security-Token (for temporary credentials)
// and Authorization to req, whose body is body (nil for none).
func (s SigV4) Sign(req *http.Request, body []byte, c Credentials, now time.Time) {
	ts := now.UTC().Format(amzDate)
	req.Header.Set("X-Amz-Date", ts)
	if c.SessionToken != "" {
		req.Header.Set("X-Amz-Security-Token", c.SessionToken)
	}
	signed, canon := s.CanonicalRequest(req, body)
	scope := ts[:8] + "/" + s.Region + "/" + s.Service + "/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + ts + "\n" + scope + "\n" + hexSHA256([]byte(canon))
	key := hmacSHA256([]byte("AWS4"+c.Secret), ts[:8])
	for _, part := range []string{s.Region, s.Service, "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	sig := hex.EncodeToString(hmacSHA256(key, toSign))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+c.AccessKeyID+"/"+scope+
		", SignedHeaders="+signed+", Signature="+sig)
}

// CanonicalRequest returns the signed header list and the canonical
// request of req as SigV4 defines them: every header is signed except
// Authorization and the transport's own (User-Agent, Accept-Encoding).
func (s SigV4) CanonicalRequest(req *http.Request, body []byte) (signedHeaders, canonical string) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	headers := map[string]string{"host": host}
	for k, v := range req.Header {
		lk := strings.ToLower(k)
		switch lk {
		case "authorization", "user-agent", "accept-encoding", "content-length":
			continue
		}
		vals := make([]string, len(v))
		for i, x := range v {
			vals[i] = strings.Join(strings.Fields(x), " ")
		}
		headers[lk] = strings.Join(vals, ",")
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range headers {
			if !yield(k) {
				return
			}
		}
	})
	var ch strings.Builder
	for _, n := range names {
		ch.WriteString(n + ":" + headers[n] + "\n")
	}
	path := req.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	signedHeaders = strings.Join(names, ";")
	canonical = req.Method + "\n" + path + "\n" + canonicalQuery(req.URL.Query()) + "\n" +
		ch.String() + "\n" + signedHeaders + "\n" + hexSHA256(body)
	return signedHeaders, canonical
}

// canonicalQuery sorts by key then value and encodes per RFC 3986 (space
// as %20, ~ unescaped), as SigV4 and Alibaba's RPC signature both want.
func canonicalQuery(q url.Values) string {
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, Escape(k)+"="+Escape(v))
		}
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "&")
}

// Escape percent-encodes s per RFC 3986: only A-Z a-z 0-9 - _ . ~ stay.
func Escape(s string) string {
	e := url.QueryEscape(s)
	e = strings.ReplaceAll(e, "+", "%20")
	e = strings.ReplaceAll(e, "*", "%2A")
	return strings.ReplaceAll(e, "%7E", "~")
}

func hexSHA256(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
