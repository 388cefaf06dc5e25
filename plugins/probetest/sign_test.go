package probetest_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// The fakes verify the signatures the SDKs compute: a request signed with
// another secret than the fake's for that key is refused, as the vendor
// refuses it.

// signRPC is Alibaba Cloud's RPC signature (v1, HMAC-SHA1) of the
// request parameters q (all of them, without Signature) for method, from
// the documentation's algorithm: the sorted, RFC 3986-encoded parameters,
// encoded once more behind "METHOD&%2F&", keyed with the secret and "&".
func signRPC(method string, q url.Values, secret string) string {
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, escapeRFC3986(k)+"="+escapeRFC3986(v))
		}
	}
	slices.Sort(pairs)
	toSign := method + "&" + escapeRFC3986("/") + "&" + escapeRFC3986(strings.Join(pairs, "&"))
	m := hmac.New(sha1.New, []byte(secret+"&"))
	m.Write([]byte(toSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// escapeRFC3986 percent-encodes all but A-Z a-z 0-9 - _ . ~.
func escapeRFC3986(s string) string {
	e := url.QueryEscape(s)
	e = strings.ReplaceAll(e, "+", "%20")
	e = strings.ReplaceAll(e, "*", "%2A")
	return strings.ReplaceAll(e, "%7E", "~")
}

// The example of Alibaba Cloud's RPC signature documentation (ECS
// DescribeRegions with the key testid/testsecret): the fake's own check
// is right before it judges the SDK.
func TestRPCSignatureDocumentedExample(t *testing.T) {
	q := url.Values{
		"Timestamp": {"2016-02-23T12:46:24Z"}, "Format": {"XML"}, "AccessKeyId": {"testid"},
		"Action": {"DescribeRegions"}, "SignatureMethod": {"HMAC-SHA1"},
		"SignatureNonce": {"3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"}, "Version": {"2014-05-26"},
		"SignatureVersion": {"1.0"},
	}
	if got, want := signRPC(http.MethodGet, q, "testsecret"), "OLeaidS1JvxuMvnyHOwuJ+uX5qY="; got != want {
		t.Errorf("signature %s, want %s", got, want)
	}
	for in, want := range map[string]string{"a b": "a%20b", "a*b": "a%2Ab", "a~b": "a~b", "[{\"x\":1}]": "%5B%7B%22x%22%3A1%7D%5D", "/": "%2F"} {
		if got := escapeRFC3986(in); got != want {
			t.Errorf("escapeRFC3986(%q) = %q, want %q", in, got, want)
		}
	}
}

// sigV4 is what an AWS service reads of a request's Signature Version 4.
type sigV4 struct {
	key, date, region, service, signed, signature string
	at                                            time.Time
}

func parseSigV4(r *http.Request) (sigV4, error) {
	var s sigV4
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ")
	if !ok {
		return s, fmt.Errorf("no AWS4-HMAC-SHA256 Authorization")
	}
	for _, part := range strings.Split(auth, ", ") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "Credential":
			scope := strings.Split(v, "/")
			if len(scope) != 5 || scope[4] != "aws4_request" {
				return s, fmt.Errorf("credential scope %q", v)
			}
			s.key, s.date, s.region, s.service = scope[0], scope[1], scope[2], scope[3]
		case "SignedHeaders":
			s.signed = v
		case "Signature":
			s.signature = v
		}
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || at.Format("20060102") != s.date {
		return s, fmt.Errorf("X-Amz-Date %q does not match the scope's date %s", r.Header.Get("X-Amz-Date"), s.date)
	}
	s.at = at
	return s, nil
}

// verifySigV4 recomputes the request's signature with the SDK's own
// signer over what arrived (method, path, query, the signed headers, the
// body's hash) and secret; a different secret, or a header, query or body
// changed on the way, gives another signature.
func verifySigV4(r *http.Request, body []byte, s sigV4, secret string) error {
	if !strings.Contains(";"+s.signed+";", ";x-amz-date;") || !strings.Contains(";"+s.signed+";", ";host;") {
		return fmt.Errorf("SignedHeaders %q lacks host or x-amz-date", s.signed)
	}
	check, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	if err != nil {
		return err
	}
	for _, h := range strings.Split(s.signed, ";") {
		if h != "host" {
			check.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	check.ContentLength = r.ContentLength
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: s.key, SecretAccessKey: secret, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, check, hex.EncodeToString(sum[:]), s.service, s.region, s.at); err != nil {
		return err
	}
	if !strings.HasSuffix(check.Header.Get("Authorization"), "Signature="+s.signature) {
		return fmt.Errorf("signature mismatch")
	}
	return nil
}
