package probetest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/gopatrol/gopatrol/metricdef"
	"github.com/gopatrol/gopatrol/plugins/sdk"
	"github.com/gopatrol/gopatrol/plugins/sdk/cloudapi"
)

// roleIMDS adds an instance role to a token-mode metadata service: each
// fetch of the role's credentials issues a new key (rotation), valid for
// an hour.
func roleIMDS(md *tokenIMDS, listPath string, keyField, secretField, tokenField string) (http.Handler, *atomic.Int32) {
	var issued atomic.Int32
	md.files[listPath] = "gopatrol-role\n"
	md.files[listPath+"gopatrol-role"] = "" // token mode applies to it too
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == listPath+"gopatrol-role" {
			// Token mode still applies: check it by serving through md.
			rec := &bodyRecorder{header: http.Header{}}
			md.ServeHTTP(rec, r)
			if rec.status != 0 && rec.status != http.StatusOK {
				w.WriteHeader(rec.status)
				return
			}
			n := issued.Add(1)
			json.NewEncoder(w).Encode(map[string]string{
				"Code": "Success", keyField: fmt.Sprintf("STS.KEY%d", n), secretField: fmt.Sprintf("secret-%d", n),
				tokenField: fmt.Sprintf("session-%d", n), "Expiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
			})
			return
		}
		md.ServeHTTP(w, r)
	}), &issued
}

type bodyRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bodyRecorder) Header() http.Header         { return b.header }
func (b *bodyRecorder) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bodyRecorder) WriteHeader(s int)           { b.status = s }

// secretOf maps the keys the role issues to their secrets, as the API's
// own key store would.
func secretOf(key string) string {
	if rest, ok := strings.CutPrefix(key, "STS.KEY"); ok {
		return "secret-" + rest
	}
	if key == "AKIDENV" {
		return "env-secret"
	}
	return ""
}

// cloudWatch is CloudWatch's query API as the SDKs speak it: a form POST
// of GetMetricData, signed with SigV4 for monitoring in the region;
// it verifies the signature and the session token, pages with NextToken,
// and can throttle, refuse expired keys, or answer garbage.
type cloudWatch struct {
	mu        sync.Mutex
	requests  int
	throttle  int             // answer Throttling this many times first
	expired   map[string]bool // keys answered ExpiredToken
	raw       string          // answer this instead
	instances []string
}

func (c *cloudWatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	body, _ := io.ReadAll(r.Body)
	fail := func(status int, code, msg string) {
		w.WriteHeader(status)
		fmt.Fprintf(w, `<ErrorResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error></ErrorResponse>`, code, msg)
	}
	auth := r.Header.Get("Authorization")
	var key, scope, signed, sig string
	for _, part := range strings.Split(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256 "), ", ") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "Credential":
			key, scope, _ = strings.Cut(v, "/")
		case "SignedHeaders":
			signed = v
		case "Signature":
			sig = v
		}
	}
	date, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || time.Since(date).Abs() > 5*time.Minute || !strings.HasSuffix(scope, "/eu-central-1/monitoring/aws4_request") {
		fail(http.StatusForbidden, "IncompleteSignature", "bad date or scope "+scope)
		return
	}
	// Recompute the signature over what arrived, with the key's secret.
	check, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	for _, h := range strings.Split(signed, ";") {
		if h != "host" {
			check.Header.Set(h, r.Header.Get(h))
		}
	}
	check.Header.Del("Authorization")
	secret := secretOf(key)
	cloudapi.SigV4{Region: "eu-central-1", Service: "monitoring"}.Sign(check, body, cloudapi.Credentials{AccessKeyID: key, Secret: secret, SessionToken: r.Header.Get("X-Amz-Security-Token")}, date)
	if secret == "" || !strings.HasSuffix(check.Header.Get("Authorization"), "Signature="+sig) || !strings.Contains(signed, "x-amz-date") {
		fail(http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
		return
	}
	if strings.HasPrefix(key, "STS.") && r.Header.Get("X-Amz-Security-Token") != "session-"+strings.TrimPrefix(key, "STS.KEY") {
		fail(http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
		return
	}
	if c.expired[key] {
		fail(http.StatusForbidden, "ExpiredToken", "The security token included in the request is expired")
		return
	}
	if c.throttle > 0 {
		c.throttle--
		fail(http.StatusBadRequest, "Throttling", "Rate exceeded")
		return
	}
	if c.raw != "" {
		fmt.Fprint(w, c.raw)
		return
	}
	q, _ := url.ParseQuery(string(body))
	if q.Get("Action") != "GetMetricData" || q.Get("Version") != "2010-08-01" ||
		q.Get("MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Value") != "i-0123456789abcdef0" {
		fail(http.StatusBadRequest, "InvalidParameterValue", "unexpected request "+string(body))
		return
	}
	// Two pages: the packets, then the credits.
	page := `<member><Id>pin</Id><StatusCode>Complete</StatusCode><Timestamps><member>2026-11-30T08:00:00Z</member><member>2026-11-30T07:55:00Z</member></Timestamps><Values><member>1200.0</member><member>900.0</member></Values></member>
<member><Id>pout</Id><StatusCode>Complete</StatusCode><Values><member>800.0</member></Values></member>`
	next := "<NextToken>page-2</NextToken>"
	if q.Get("NextToken") == "page-2" {
		page, next = `<member><Id>credit</Id><StatusCode>Complete</StatusCode><Values><member>42.5</member></Values></member>`, ""
	}
	fmt.Fprintf(w, `<GetMetricDataResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><GetMetricDataResult><MetricDataResults>%s</MetricDataResults>%s<Messages/></GetMetricDataResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetMetricDataResponse>`, page, next)
}

// inCatalogue fails unless every point is a catalogue cloud instrument
// in its unit, with no attribute the instrument does not keep: what the
// agent would drop is a probe bug.
func inCatalogue(t *testing.T, pts []sdk.Point) {
	t.Helper()
	for _, p := range pts {
		i := slices.IndexFunc(metricdef.CloudSpecs, func(s metricdef.Spec) bool { return s.Name == p.Name })
		if i < 0 || metricdef.CloudSpecs[i].Unit != p.Unit {
			t.Errorf("point %s in %q: not a cloud instrument of metricdef in that unit", p.Name, p.Unit)
			continue
		}
		for k := range p.Attributes {
			if !slices.Contains(metricdef.CloudSpecs[i].Attributes, attribute.Key(k)) {
				t.Errorf("point %s: attribute %s is not the instrument's", p.Name, k)
			}
		}
	}
}

// byName indexes points by name and their one distinguishing attribute.
func byName(pts []sdk.Point) map[string]sdk.Point {
	m := map[string]sdk.Point{}
	for _, p := range pts {
		k := p.Name
		for _, a := range []string{"network.io.direction", "gopatrol.cloud.lb.id", "k8s.node.condition.type"} {
			if v := p.Attributes[a]; v != "" {
				k += "/" + v
			}
		}
		m[k] = p
	}
	return m
}

func TestAWSCloudWatch(t *testing.T) {
	tests := []struct {
		name      string
		cw        *cloudWatch
		env       []string
		wantErr   string
		wantCreds int32 // role credentials fetched
	}{
		{"signed, paged, throttled then answered", &cloudWatch{throttle: 2}, nil, "", 1},
		{"expired role credentials refreshed through IMDS", &cloudWatch{expired: map[string]bool{"STS.KEY1": true}}, nil, "", 2},
		{"environment credentials", &cloudWatch{}, []string{"AWS_ACCESS_KEY_ID=AKIDENV", "AWS_SECRET_ACCESS_KEY=env-secret"}, "", 0},
		{"wrong secret refused by the signature check", &cloudWatch{}, []string{"AWS_ACCESS_KEY_ID=AKIDENV", "AWS_SECRET_ACCESS_KEY=not-the-secret"}, "SignatureDoesNotMatch", 0},
		{"throttled past the retries", &cloudWatch{throttle: 100}, nil, "after 4 attempts", 1},
		{"malformed answer", &cloudWatch{raw: "<GetMetricDataResponse><unclosed"}, nil, "not GetMetricDataResponse XML", 1},
		{"oversized answer", &cloudWatch{raw: "<x>" + strings.Repeat("a", 2<<20) + "</x>"}, nil, "too large", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md, issued := roleIMDS(newAWS(awsDoc), "/latest/meta-data/iam/security-credentials/", "AccessKeyId", "SecretAccessKey", "Token")
			imds := server(t, md)
			cw := server(t, tt.cw)
			env := append(awsEnv(imds.URL), "AWS_ENDPOINT_URL_CLOUDWATCH="+cw.URL, "GOPATROL_AWS_CLOUDWATCH_INTERVAL=5m")
			p := openHost(t, []string{"aws"}, append(env, tt.env...), callTimeout(10*time.Second)).Plugins()[0]
			pts, err := p.Collect(context.Background())
			if got := issued.Load(); got != tt.wantCreds {
				t.Errorf("role credentials fetched %d times, want %d", got, tt.wantCreds)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Collect: %v, want an error with %q", err, tt.wantErr)
				}
				// The collection failed; detection goes on.
				wantAttrs(t, p.Detect(context.Background()), awsWant)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			inCatalogue(t, pts)
			got := byName(pts)
			for k, want := range map[string]float64{
				"gopatrol.cloud.network.packets/receive": 1200, "gopatrol.cloud.network.packets/transmit": 800,
				"gopatrol.cloud.cpu.credit_balance": 42.5,
			} {
				if got[k].Value != want || got[k].Unit == "" {
					t.Errorf("%s = %+v, want %v with a unit; all: %v", k, got[k], want, pts)
				}
			}
			// Within the interval the API is not asked again: the last
			// points are answered.
			before := tt.cw.count()
			again, err := p.Collect(context.Background())
			if err != nil || len(again) != len(pts) || tt.cw.count() != before {
				t.Errorf("second Collect within the interval: %d points, %v, %d more requests; want the same points, no request", len(again), err, tt.cw.count()-before)
			}
		})
	}
}

func (c *cloudWatch) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests
}

func TestAWSCloudWatchOffByDefault(t *testing.T) {
	cw := &cloudWatch{}
	srv := server(t, cw)
	imds := server(t, newAWS(awsDoc))
	p := openHost(t, []string{"aws"}, append(awsEnv(imds.URL), "AWS_ENDPOINT_URL_CLOUDWATCH="+srv.URL)).Plugins()[0]
	// The test namespace has no ENA interface: nothing, and no error.
	if pts, err := p.Collect(context.Background()); err != nil || len(pts) != 0 {
		t.Fatalf("Collect = %v, %v; want no points, no error", pts, err)
	}
	if n := cw.count(); n != 0 {
		t.Errorf("CloudWatch asked %d times without GOPATROL_AWS_CLOUDWATCH_INTERVAL", n)
	}
	bad := openHost(t, []string{"aws"}, append(awsEnv(imds.URL), "GOPATROL_AWS_CLOUDWATCH_INTERVAL=10s")).Plugins()[0]
	if _, err := bad.Collect(context.Background()); err == nil || !strings.Contains(err.Error(), "GOPATROL_AWS_CLOUDWATCH_INTERVAL=\"10s\"") {
		t.Errorf("Collect with a 10s interval: %v, want an error naming the variable", err)
	}
}

func TestAWSCloudWatchDown(t *testing.T) {
	imds := server(t, newAWS(awsDoc))
	env := append(awsEnv(imds.URL), "AWS_ENDPOINT_URL_CLOUDWATCH=http://"+closedAddr(t), "GOPATROL_AWS_CLOUDWATCH_INTERVAL=1m",
		"AWS_ACCESS_KEY_ID=AKIDENV", "AWS_SECRET_ACCESS_KEY=env-secret")
	p := openHost(t, []string{"aws"}, env).Plugins()[0]
	if _, err := p.Collect(context.Background()); err == nil || !strings.Contains(err.Error(), "CloudWatch") {
		t.Fatalf("Collect with CloudWatch down: %v, want a CloudWatch error", err)
	}
	wantAttrs(t, p.Detect(context.Background()), awsWant)
}
