package probetest_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// tokenIMDS is a metadata service in token mode, as EC2's IMDSv2 and
// Alibaba's hardened mode document it: PUT the token path with a TTL
// header to get a token, then send it on every GET; no token, or one not
// issued (or revoked), is 401.
type tokenIMDS struct {
	ttlHeader, tokenHeader string
	files                  map[string]string // path: body; absent is 404

	mu      sync.Mutex
	issued  map[string]bool
	puts    atomic.Int32
	gets    atomic.Int32
	refuse  bool // 401 every GET, whatever the token
	slowGet time.Duration
}

func (s *tokenIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "forbidden", http.StatusForbidden) // IMDS refuses proxied requests
		return
	}
	if r.URL.Path == "/latest/api/token" {
		if r.Method != http.MethodPut {
			http.Error(w, "", http.StatusMethodNotAllowed)
			return
		}
		ttl, err := strconv.Atoi(r.Header.Get(s.ttlHeader))
		if err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "missing or invalid "+s.ttlHeader, http.StatusBadRequest)
			return
		}
		n := s.puts.Add(1)
		tok := fmt.Sprintf("token-%d", n)
		s.mu.Lock()
		s.issued[tok] = true
		s.mu.Unlock()
		w.Header().Set(s.ttlHeader, strconv.Itoa(ttl))
		fmt.Fprint(w, tok)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "", http.StatusMethodNotAllowed)
		return
	}
	s.gets.Add(1)
	s.mu.Lock()
	ok := s.issued[r.Header.Get(s.tokenHeader)] && !s.refuse
	s.mu.Unlock()
	if !ok {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	if s.slowGet > 0 {
		slowHandler(s.slowGet)(w, r)
	}
	body, found := s.files[r.URL.Path]
	if !found {
		http.NotFound(w, r)
		return
	}
	fmt.Fprint(w, body)
}

func (s *tokenIMDS) revokeAll() {
	s.mu.Lock()
	s.issued = map[string]bool{}
	s.mu.Unlock()
}

const awsDoc = `{
  "accountId": "123456789012", "architecture": "x86_64",
  "availabilityZone": "eu-central-1b", "imageId": "ami-0abcdef1234567890",
  "instanceId": "i-0123456789abcdef0", "instanceType": "m6i.large",
  "privateIp": "10.0.0.12", "region": "eu-central-1", "version": "2017-09-30"
}`

func newAWS(doc string) *tokenIMDS {
	return &tokenIMDS{
		ttlHeader: "X-aws-ec2-metadata-token-ttl-seconds", tokenHeader: "X-aws-ec2-metadata-token",
		files:  map[string]string{"/latest/dynamic/instance-identity/document": doc},
		issued: map[string]bool{},
	}
}

func awsEnv(url string) []string { return []string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + url} }

var awsWant = map[string]string{
	"cloud.provider": "aws", "cloud.platform": "aws_ec2",
	"cloud.region": "eu-central-1", "cloud.availability_zone": "eu-central-1b",
	"cloud.account.id": "123456789012", "host.id": "i-0123456789abcdef0", "host.type": "m6i.large",
}

func TestAWS(t *testing.T) {
	imds := newAWS(awsDoc)
	srv := server(t, imds)
	h := openHost(t, []string{"aws"}, awsEnv(srv.URL))
	p := h.Plugins()[0]
	wantAttrs(t, p.Detect(context.Background()), awsWant)

	// The token is cached in the plugin until its TTL: one PUT for two.
	wantAttrs(t, p.Detect(context.Background()), awsWant)
	if puts, gets := imds.puts.Load(), imds.gets.Load(); puts != 1 || gets != 2 {
		t.Errorf("PUT token %d times, GET %d times; want 1 and 2 (token cached)", puts, gets)
	}

	// A token revoked before its TTL: 401, a new token, the same answer.
	imds.revokeAll()
	wantAttrs(t, p.Detect(context.Background()), awsWant)
	if puts := imds.puts.Load(); puts != 2 {
		t.Errorf("PUT token %d times after a revocation, want 2", puts)
	}

	// A service that refuses every token is an error on this cloud.
	imds.refuse = true
	wantStatus(t, p.Detect(context.Background()), sdk.Failed, "IMDSv2 refused the session token")
}

func TestAWSErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.Handler
		status  sdk.Status
		reason  string
	}{
		{"region never cut from the zone", newAWS(strings.Replace(awsDoc, `"region": "eu-central-1",`, "", 1)),
			sdk.Failed, "identity document lacks region"},
		{"oversized document", newAWS(`{"pad": "` + strings.Repeat("x", 300<<10) + `"}`),
			sdk.Failed, "response body too large"},
		{"another cloud's service", http.NotFoundHandler(), sdk.NotThisCloud, "not EC2's IMDSv2"},
		{"token forbidden", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "", http.StatusForbidden)
		}), sdk.Failed, "403 Forbidden"},
		{"slower than the deadline", slowHandler(10 * time.Second), sdk.Failed, "deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := server(t, tt.handler)
			start := time.Now()
			r := detect(t, "aws", awsEnv(srv.URL), callTimeout(500*time.Millisecond))
			wantStatus(t, r, tt.status, tt.reason)
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("took %v: the call deadline did not hold", el)
			}
		})
	}
}

func newAlibaba() *tokenIMDS {
	return &tokenIMDS{
		ttlHeader: "X-aliyun-ecs-metadata-token-ttl-seconds", tokenHeader: "X-aliyun-ecs-metadata-token",
		files: map[string]string{
			"/latest/meta-data/region-id":              "cn-hangzhou",
			"/latest/meta-data/zone-id":                "cn-hangzhou-i",
			"/latest/meta-data/instance-id":            "i-bp67acfmxazb4ph****",
			"/latest/meta-data/owner-account-id":       "1234567890123456",
			"/latest/meta-data/instance/instance-type": "ecs.g7.large",
		},
		issued: map[string]bool{},
	}
}

func alibabaEnv(url string) []string { return []string{"GOPATROL_ALIBABA_METADATA_ENDPOINT=" + url} }

func TestAlibaba(t *testing.T) {
	want := map[string]string{
		"cloud.provider": "alibaba_cloud", "cloud.platform": "alibaba_cloud_ecs",
		"cloud.region": "cn-hangzhou", "cloud.availability_zone": "cn-hangzhou-i",
		"cloud.account.id": "1234567890123456", "host.id": "i-bp67acfmxazb4ph****", "host.type": "ecs.g7.large",
	}
	md := newAlibaba()
	srv := server(t, md)
	h := openHost(t, []string{"alibaba"}, alibabaEnv(srv.URL))
	p := h.Plugins()[0]
	wantAttrs(t, p.Detect(context.Background()), want)
	wantAttrs(t, p.Detect(context.Background()), want)
	if puts, gets := md.puts.Load(), md.gets.Load(); puts != 1 || gets != 10 {
		t.Errorf("PUT token %d times, GET %d times; want 1 and 10 (token cached)", puts, gets)
	}

	// An optional item the service does not have (404) is left out.
	delete(md.files, "/latest/meta-data/owner-account-id")
	delete(want, "cloud.account.id")
	wantAttrs(t, p.Detect(context.Background()), want)

	// A required one is an error that names it.
	delete(md.files, "/latest/meta-data/zone-id")
	wantStatus(t, p.Detect(context.Background()), sdk.Failed, "/latest/meta-data/zone-id: 404")

	// Tokens refused: 401 is an error, never a silent token-less retry.
	md.refuse = true
	wantStatus(t, p.Detect(context.Background()), sdk.Failed, "401 Unauthorized")
}

func TestAlibabaErrors(t *testing.T) {
	big := newAlibaba()
	big.files["/latest/meta-data/region-id"] = strings.Repeat("r", 300<<10)
	slow := newAlibaba()
	slow.slowGet = 10 * time.Second
	tests := []struct {
		name    string
		handler http.Handler
		status  sdk.Status
		reason  string
	}{
		{"oversized item", big, sdk.Failed, "response body too large"},
		{"slower than the deadline", slow, sdk.Failed, "deadline exceeded"},
		{"not ECS", http.NotFoundHandler(), sdk.NotThisCloud, "not ECS's metadata service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := server(t, tt.handler)
			wantStatus(t, detect(t, "alibaba", alibabaEnv(srv.URL), callTimeout(500*time.Millisecond)), tt.status, tt.reason)
		})
	}
}
