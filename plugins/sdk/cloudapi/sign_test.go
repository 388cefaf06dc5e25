package cloudapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The example of the AWS documentation ("Create a signed AWS API
// request", IAM ListUsers): its canonical request hash and signature.
func TestSigV4DocumentedExample(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", nil)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	c := Credentials{AccessKeyID: "AKIDEXAMPLE", Secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	s := SigV4{Region: "us-east-1", Service: "iam"}
	s.Sign(req, nil, c, time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC))
	_, canon := s.CanonicalRequest(req, nil)
	if got, want := hexSHA256([]byte(canon)), "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"; got != want {
		t.Errorf("canonical request hash %s, want %s; canonical request:\n%s", got, want, canon)
	}
	want := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
	if got := req.Header.Get("Authorization"); got != want {
		t.Errorf("Authorization\n got %s\nwant %s", got, want)
	}
}

// The example of Alibaba Cloud's RPC signature documentation (ECS
// DescribeRegions with the key testid/testsecret).
func TestRPCSignatureDocumentedExample(t *testing.T) {
	q := url.Values{
		"Timestamp": {"2016-02-23T12:46:24Z"}, "Format": {"XML"}, "AccessKeyId": {"testid"},
		"Action": {"DescribeRegions"}, "SignatureMethod": {"HMAC-SHA1"},
		"SignatureNonce": {"3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"}, "Version": {"2014-05-26"},
		"SignatureVersion": {"1.0"},
	}
	if got, want := SignRPC(http.MethodGet, q, "testsecret"), "OLeaidS1JvxuMvnyHOwuJ+uX5qY="; got != want {
		t.Errorf("signature %s, want %s", got, want)
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{"a b": "a%20b", "a*b": "a%2Ab", "a~b": "a~b", "[{\"x\":1}]": "%5B%7B%22x%22%3A1%7D%5D", "/": "%2F"} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCredentialsNeverPrinted(t *testing.T) {
	c := Credentials{AccessKeyID: "AKIAEXAMPLEKEY", Secret: "s3cr3t-value", SessionToken: "tok-value"}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "creds", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), b.String()} {
		if strings.Contains(s, "s3cr3t") || strings.Contains(s, "tok-value") || strings.Contains(s, "EXAMPLEKEY") {
			t.Errorf("credentials leak: %s", s)
		}
	}
}
