package probetest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/internal/loopback"
)

// cms is CloudMonitor's RPC API as Alibaba Cloud's SDK for Go speaks it:
// POST with the parameters in the query (and any in the form), signed
// with the RPC signature v1 (HMAC-SHA1 over the sorted, RFC 3986-encoded
// parameters), verified here with the key's secret; DescribeMetricList
// pages with NextToken and returns Datapoints as a JSON string.
type cms struct {
	mu       sync.Mutex
	requests int
	throttle int
	expired  map[string]bool
	raw      string
	redirect bool // answer every request with a redirect elsewhere
}

func (c *cms) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests
}

func (c *cms) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	if c.redirect {
		http.Redirect(w, r, "http://192.0.2.1/elsewhere", http.StatusFound)
		return
	}
	fail := func(status int, code, msg string) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"RequestId": "r", "Code": code, "Message": msg, "Success": false})
	}
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "InvalidParameter", "form")
		return
	}
	q := r.Form // the query's parameters and the body's
	sig := q.Get("Signature")
	q.Del("Signature")
	secret := secretOf(q.Get("AccessKeyId"))
	if secret == "" || sig != signRPC(r.Method, q, secret) || q.Get("SignatureMethod") != "HMAC-SHA1" || q.Get("SignatureNonce") == "" {
		fail(http.StatusBadRequest, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
		return
	}
	ts, err := time.Parse("2006-01-02T15:04:05Z", q.Get("Timestamp"))
	if err != nil || time.Since(ts).Abs() > 15*time.Minute {
		fail(http.StatusBadRequest, "InvalidTimeStamp.Expired", "timestamp")
		return
	}
	key := q.Get("AccessKeyId")
	if strings.HasPrefix(key, "STS.") && q.Get("SecurityToken") != "session-"+strings.TrimPrefix(key, "STS.KEY") {
		fail(http.StatusBadRequest, "InvalidSecurityToken.MismatchWithAccessKey", "token")
		return
	}
	if c.expired[key] {
		fail(http.StatusBadRequest, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired.")
		return
	}
	if c.throttle > 0 {
		c.throttle--
		fail(http.StatusServiceUnavailable, "Throttling.User", "Request was denied due to user flow control.")
		return
	}
	if c.raw != "" {
		fmt.Fprint(w, c.raw)
		return
	}
	if q.Get("Action") != "DescribeMetricList" || q.Get("Namespace") != "acs_slb_dashboard" || q.Get("MetricName") != "Qps" {
		fail(http.StatusBadRequest, "InvalidParameter", "unexpected "+r.URL.RawQuery)
		return
	}
	var dims []map[string]string
	json.Unmarshal([]byte(q.Get("Dimensions")), &dims)
	if len(dims) != 2 || dims[0]["instanceId"] != "lb-1" {
		fail(http.StatusBadRequest, "InvalidParameter", "Dimensions "+q.Get("Dimensions"))
		return
	}
	now := time.Now().Truncate(time.Minute).UnixMilli()
	dp := func(id string, ago int64, avg float64) map[string]any {
		return map[string]any{"timestamp": now - ago*60000, "instanceId": id, "Average": avg, "Maximum": avg, "Minimum": avg}
	}
	pts, next := []map[string]any{dp("lb-1", 2, 100), dp("lb-1", 1, 100), dp("lb-2", 1, 7)}, "page-2"
	if q.Get("NextToken") == "page-2" {
		pts, next = []map[string]any{dp("lb-1", 0, 150)}, ""
	}
	b, _ := json.Marshal(pts)
	json.NewEncoder(w).Encode(map[string]any{"RequestId": "r", "Code": "200", "Success": true, "Period": "60", "NextToken": next, "Datapoints": string(b)})
}

func TestAlibabaCloudMonitor(t *testing.T) {
	tests := []struct {
		name      string
		api       *cms
		env       []string
		wantErr   string
		wantCreds int32
	}{
		{"signed, paged, throttled then answered", &cms{throttle: 2}, nil, "", 1},
		{"expired STS credentials refreshed through the RAM role", &cms{expired: map[string]bool{"STS.KEY1": true}}, nil, "", 2},
		{"environment credentials", &cms{}, []string{"ALIBABA_CLOUD_ACCESS_KEY_ID=AKIDENV", "ALIBABA_CLOUD_ACCESS_KEY_SECRET=env-secret"}, "", 0},
		{"wrong secret refused by the signature check", &cms{}, []string{"ALIBABA_CLOUD_ACCESS_KEY_ID=AKIDENV", "ALIBABA_CLOUD_ACCESS_KEY_SECRET=wrong"}, "SignatureDoesNotMatch", 0},
		{"throttled past the retries", &cms{throttle: 100}, nil, "after 4 attempts", 1},
		{"malformed Datapoints", &cms{raw: `{"Code":"200","Success":true,"Datapoints":"[{oops"}`}, nil, "Datapoints is not a JSON list", 1},
		{"malformed answer", &cms{raw: `{"Code":"200","Datapoints":[`}, nil, "SDK.JsonUnmarshalError", 1},
		{"redirect refused (the SDK's own http.Client would follow it)", &cms{redirect: true}, nil, "refusing to follow a signed request", 1},
		{"oversized answer", &cms{raw: `{"Datapoints":"` + strings.Repeat("a", 2<<20) + `"}`}, nil, "too large", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md, issued := roleIMDS(newAlibaba(), "/latest/meta-data/ram/security-credentials/", "AccessKeyId", "AccessKeySecret", "SecurityToken")
			meta := server(t, md)
			api := server(t, tt.api)
			env := append(alibabaEnv(meta.URL), "GOPATROL_ALIBABA_CMS_ENDPOINT="+api.URL, "GOPATROL_ALIBABA_SLB_IDS=lb-1, lb-2")
			p := openHost(t, []string{"alibaba"}, append(env, tt.env...), callTimeout(10*time.Second)).Plugins()[0]
			pts, err := p.Collect(context.Background())
			if got := issued.Load(); got != tt.wantCreds {
				t.Errorf("RAM role credentials fetched %d times, want %d", got, tt.wantCreds)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Collect: %v, want an error with %q", err, tt.wantErr)
				}
				if r := p.Detect(context.Background()); !r.Up() {
					t.Fatalf("Detect after a failed collection: %+v", r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			inCatalogue(t, pts)
			got := byName(pts)
			for k, want := range map[string]float64{
				"gopatrol.cloud.lb.requests.rate/lb-1": 150, "gopatrol.cloud.lb.requests.change/lb-1": 0.5,
				"gopatrol.cloud.lb.requests.rate/lb-2": 7,
			} {
				if got[k].Value != want || got[k].Unit == "" {
					t.Errorf("%s = %+v, want %v with a unit; all: %v", k, got[k], want, pts)
				}
			}
			if _, ok := got["gopatrol.cloud.lb.requests.change/lb-2"]; ok {
				t.Error("a change against a baseline of no earlier point")
			}
			before := tt.api.count()
			if _, err := p.Collect(context.Background()); err != nil || tt.api.count() != before {
				t.Errorf("second Collect within the interval: %v, %d more requests; want none", err, tt.api.count()-before)
			}
		})
	}
}

func TestAlibabaCloudMonitorDown(t *testing.T) {
	meta := server(t, newAlibaba())
	env := append(alibabaEnv(meta.URL), "GOPATROL_ALIBABA_CMS_ENDPOINT=http://"+loopback.UnusedAddr(t), "GOPATROL_ALIBABA_SLB_IDS=lb-1",
		"ALIBABA_CLOUD_ACCESS_KEY_ID=AKIDENV", "ALIBABA_CLOUD_ACCESS_KEY_SECRET=env-secret")
	p := openHost(t, []string{"alibaba"}, env).Plugins()[0]
	if _, err := p.Collect(context.Background()); err == nil || !strings.Contains(err.Error(), "CloudMonitor") {
		t.Fatalf("Collect with CloudMonitor down: %v, want a CloudMonitor error", err)
	}
	if r := p.Detect(context.Background()); !r.Up() {
		t.Fatalf("Detect with CloudMonitor down: %+v", r)
	}
	// No load balancer named: nothing is asked.
	quiet := openHost(t, []string{"alibaba"}, append(alibabaEnv(meta.URL), "GOPATROL_ALIBABA_CMS_ENDPOINT=http://"+loopback.UnusedAddr(t))).Plugins()[0]
	if pts, err := quiet.Collect(context.Background()); err != nil || len(pts) != 0 {
		t.Errorf("Collect without GOPATROL_ALIBABA_SLB_IDS = %v, %v; want nothing", pts, err)
	}
}

func TestOpenShiftNodeConditions(t *testing.T) {
	api := kubeAPI{token: "sa-token", nodes: euLabels, conditions: []map[string]string{
		{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}, {"type": "NetworkUnavailable", "status": "Unknown"},
	}}
	p := openHost(t, []string{"openshift"}, kubeEnv(t, api, "sa-token")).Plugins()[0]
	pts, err := p.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	inCatalogue(t, pts)
	got := byName(pts)
	for cond, status := range map[string]string{"Ready": "true", "MemoryPressure": "false", "NetworkUnavailable": "unknown"} {
		pt := got["gopatrol.cloud.node.condition/"+cond]
		if pt.Value != 1 || pt.Attributes["k8s.node.condition.status"] != status || pt.Attributes["k8s.node.name"] != "node-1" {
			t.Errorf("%s: %+v, want status %s", cond, pt, status)
		}
	}
	// Without get on nodes: an error that says what to grant.
	denied := openHost(t, []string{"openshift"}, kubeEnv(t, api, "other-token")).Plugins()[0]
	if _, err := denied.Collect(context.Background()); err == nil || !strings.Contains(err.Error(), "grant the service account get") {
		t.Errorf("Collect without RBAC: %v", err)
	}
}
