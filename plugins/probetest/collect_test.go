package probetest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
	"go.opentelemetry.io/otel/attribute"

	"github.com/gopatrol/gopatrol/internal/loopback"
	"github.com/gopatrol/gopatrol/metricdef"
	"github.com/gopatrol/gopatrol/plugins/sdk"
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

// cloudWatch is CloudWatch as the AWS SDK for Go v2 speaks to it: Smithy
// RPC v2 CBOR (POST /service/GraniteServiceVersion20100801/operation/
// GetMetricData, a CBOR body), signed with SigV4 for monitoring in the
// region. It verifies the signature with the key's secret and the
// session token, pages with NextToken, and can throttle, refuse expired
// keys, or answer garbage. Errors are answered as the service does in
// query-compatible mode: a CBOR __type and message, and the query code in
// X-Amzn-Query-Error.
type cloudWatch struct {
	mu       sync.Mutex
	requests int
	throttle int             // answer Throttling this many times first
	expired  map[string]bool // keys answered ExpiredToken
	raw      []byte          // answer this instead
}

const cwPath = "/service/GraniteServiceVersion20100801/operation/GetMetricData"

func (c *cloudWatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	body, _ := io.ReadAll(r.Body)
	fail := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/cbor")
		w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
		w.Header().Set("X-Amzn-Query-Error", code+";Sender")
		w.WriteHeader(status)
		w.Write(cbor.Encode(cbor.Map{"__type": cbor.String("com.amazonaws.cloudwatch#" + code), "message": cbor.String(msg)}))
	}
	if r.Method != http.MethodPost || r.URL.Path != cwPath || r.Header.Get("Smithy-Protocol") != "rpc-v2-cbor" {
		fail(http.StatusNotFound, "UnknownOperationException", r.Method+" "+r.URL.Path)
		return
	}
	sig, err := parseSigV4(r)
	if err != nil || time.Since(sig.at).Abs() > 5*time.Minute || sig.region != "eu-central-1" || sig.service != "monitoring" {
		fail(http.StatusForbidden, "IncompleteSignature", fmt.Sprintf("bad date or scope: %+v %v", sig, err))
		return
	}
	secret := secretOf(sig.key)
	if secret == "" || verifySigV4(r, body, sig, secret) != nil {
		fail(http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
		return
	}
	if strings.HasPrefix(sig.key, "STS.") && r.Header.Get("X-Amz-Security-Token") != "session-"+strings.TrimPrefix(sig.key, "STS.KEY") {
		fail(http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
		return
	}
	if c.expired[sig.key] {
		fail(http.StatusForbidden, "ExpiredToken", "The security token included in the request is expired")
		return
	}
	if c.throttle > 0 {
		c.throttle--
		fail(http.StatusBadRequest, "Throttling", "Rate exceeded")
		return
	}
	w.Header().Set("Content-Type", "application/cbor")
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	if c.raw != nil {
		w.Write(c.raw)
		return
	}
	in, _ := cbor.Decode(body)
	q, _ := in.(cbor.Map)
	if instance := cwInstance(q); instance != "i-0123456789abcdef0" {
		fail(http.StatusBadRequest, "InvalidParameterValue", "unexpected request for "+instance)
		return
	}
	at := func(min int) cbor.Value {
		return cbor.Tag{ID: 1, Value: cbor.Float64(time.Date(2026, 11, 30, 8, min, 0, 0, time.UTC).Unix())}
	}
	result := func(id string, vals ...float64) cbor.Value {
		var vs, ts cbor.List
		for i, v := range vals {
			vs, ts = append(vs, cbor.Float64(v)), append(ts, at(-5*i))
		}
		return cbor.Map{"Id": cbor.String(id), "StatusCode": cbor.String("Complete"), "Timestamps": ts, "Values": vs}
	}
	// Two pages: the packets, then the credits.
	out := cbor.Map{"MetricDataResults": cbor.List{result("pin", 1200, 900), result("pout", 800)}, "NextToken": cbor.String("page-2")}
	if tok, _ := q["NextToken"].(cbor.String); tok == "page-2" {
		out = cbor.Map{"MetricDataResults": cbor.List{result("credit", 42.5)}}
	}
	w.Write(cbor.Encode(out))
}

// cwInstance is the InstanceId dimension of every query of a
// GetMetricData input, or "" when they differ or one has none.
func cwInstance(in cbor.Map) string {
	qs, _ := in["MetricDataQueries"].(cbor.List)
	id := ""
	for i, q := range qs {
		var v cbor.String
		if qm, ok := q.(cbor.Map); ok {
			if st, ok := qm["MetricStat"].(cbor.Map); ok {
				if m, ok := st["Metric"].(cbor.Map); ok && m["Namespace"] == cbor.String("AWS/EC2") {
					if ds, ok := m["Dimensions"].(cbor.List); ok && len(ds) == 1 {
						if d, ok := ds[0].(cbor.Map); ok && d["Name"] == cbor.String("InstanceId") {
							v, _ = d["Value"].(cbor.String)
						}
					}
				}
			}
		}
		if v == "" || i > 0 && string(v) != id {
			return ""
		}
		id = string(v)
	}
	return id
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
		{"throttled past the retries", &cloudWatch{throttle: 100}, nil, "maximum number of attempts, 4", 1},
		{"malformed answer", &cloudWatch{raw: []byte{0xbf, 0x71, 'M', 'e', 't'}}, nil, "deserialization failed", 1},
		{"oversized answer", &cloudWatch{raw: cbor.Encode(cbor.Map{"NextToken": cbor.String(strings.Repeat("a", 2<<20))})}, nil, "API answer too large", 1},
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
	env := append(awsEnv(imds.URL), "AWS_ENDPOINT_URL_CLOUDWATCH=http://"+loopback.UnusedAddr(t), "GOPATROL_AWS_CLOUDWATCH_INTERVAL=1m",
		"AWS_ACCESS_KEY_ID=AKIDENV", "AWS_SECRET_ACCESS_KEY=env-secret")
	p := openHost(t, []string{"aws"}, env).Plugins()[0]
	if _, err := p.Collect(context.Background()); err == nil || !strings.Contains(err.Error(), "CloudWatch") {
		t.Fatalf("Collect with CloudWatch down: %v, want a CloudWatch error", err)
	}
	wantAttrs(t, p.Detect(context.Background()), awsWant)
}
