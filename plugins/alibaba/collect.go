package alibaba

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gopatrol/gopatrol/plugins/sdk"
	"github.com/gopatrol/gopatrol/plugins/sdk/cloudapi"
	"github.com/gopatrol/gopatrol/plugins/sdk/metadata"
)

const (
	// slbEnv names the load balancers whose QPS is collected (comma
	// separated); none, nothing is asked.
	slbEnv = "GOPATROL_ALIBABA_SLB_IDS"
	// cmsIntervalEnv is how often CloudMonitor is asked (5m by default,
	// 1m at least: the free API quota is per month).
	cmsIntervalEnv = "GOPATROL_ALIBABA_CMS_INTERVAL"
	cmsEndpointEnv = "GOPATROL_ALIBABA_CMS_ENDPOINT"
	ramPath        = "/latest/meta-data/ram/security-credentials/"
	maxPages       = 10
	window         = 10 * time.Minute // the baseline: the QPS of the last ten minutes

	metricQPS     = "gopatrol.cloud.lb.requests.rate"
	metricChange  = "gopatrol.cloud.lb.requests.change"
	attrLB        = "gopatrol.cloud.lb.id"
	defaultCMSInt = 5 * time.Minute
)

func cmsInterval() (time.Duration, error) {
	raw := os.Getenv(cmsIntervalEnv)
	if raw == "" {
		return defaultCMSInt, nil
	}
	if raw == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d < time.Minute {
		return 0, fmt.Errorf("%s=%q: want a duration of at least 1m, or 0 for off", cmsIntervalEnv, raw)
	}
	return d, nil
}

// Collect reports each named load balancer's QPS and its change against
// the mean of the last ten minutes, from CloudMonitor's
// DescribeMetricList, at most once per interval.
func (p *probe) Collect(ctx context.Context) ([]sdk.Point, error) {
	var ids []string
	for _, id := range strings.Split(os.Getenv(slbEnv), ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	every, err := cmsInterval()
	if err != nil {
		return nil, err
	}
	p.cms.Every = every
	now := time.Now()
	pts, err := p.cms.Points(now, func() ([]sdk.Point, error) { return p.slbQPS(ctx, ids, now) })
	if err != nil {
		return nil, fmt.Errorf("CloudMonitor: %w", err)
	}
	return pts, nil
}

func (p *probe) meta(ctx context.Context, path string) (string, error) {
	base, err := metadata.Endpoint(endpointEnv, defaultURL)
	if err != nil {
		return "", err
	}
	tok, err := p.tokens.Token(ctx, base)
	if err != nil {
		return "", err
	}
	return p.get(ctx, base, tok, item{path: path})
}

// fetchCredentials: the usual variables, else the ECS RAM role.
func (p *probe) fetchCredentials(ctx context.Context) (cloudapi.Credentials, error) {
	if id, secret := os.Getenv("ALIBABA_CLOUD_ACCESS_KEY_ID"), os.Getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET"); id != "" && secret != "" {
		return cloudapi.Credentials{AccessKeyID: id, Secret: secret, SessionToken: os.Getenv("ALIBABA_CLOUD_SECURITY_TOKEN")}, nil
	}
	role, err := p.meta(ctx, ramPath)
	if err != nil {
		return cloudapi.Credentials{}, fmt.Errorf("RAM role: %w (is a RAM role attached to the instance?)", err)
	}
	name, err := cloudapi.RoleName(role)
	if err != nil {
		return cloudapi.Credentials{}, fmt.Errorf("GET %s: %w", ramPath, err)
	}
	b, err := p.meta(ctx, ramPath+name)
	if err != nil {
		return cloudapi.Credentials{}, err
	}
	return cloudapi.RoleCredentials([]byte(b), "AccessKeySecret", "SecurityToken")
}

type datapoint struct {
	Timestamp  int64   `json:"timestamp"`
	InstanceID string  `json:"instanceId"`
	Average    float64 `json:"Average"`
}

func (p *probe) slbQPS(ctx context.Context, ids []string, now time.Time) ([]sdk.Point, error) {
	endpoint := os.Getenv(cmsEndpointEnv)
	if endpoint == "" {
		region, err := p.meta(ctx, "/latest/meta-data/region-id")
		if err != nil {
			return nil, fmt.Errorf("region: %w", err)
		}
		endpoint = "https://metrics." + region + ".aliyuncs.com"
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%s=%q: want https://host[:port]", cmsEndpointEnv, endpoint)
	}
	dims := make([]map[string]string, len(ids))
	for i, id := range ids {
		dims[i] = map[string]string{"instanceId": id}
	}
	dj, _ := json.Marshal(dims)
	q := url.Values{
		"Action": {"DescribeMetricList"}, "Version": {"2019-01-01"}, "Format": {"JSON"},
		"Namespace": {"acs_slb_dashboard"}, "MetricName": {"Qps"}, "Period": {"60"},
		"Dimensions": {string(dj)}, "Length": {"1000"},
		"StartTime": {strconv.FormatInt(now.Add(-window).UnixMilli(), 10)},
		"EndTime":   {strconv.FormatInt(now.UnixMilli(), 10)},
	}
	series := map[string][]datapoint{}
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("DescribeMetricList: more than %d pages: refusing to follow NextToken further", maxPages)
		}
		var res cmsResult
		if err := p.cmsCall(ctx, u, q, &res); err != nil {
			return nil, err
		}
		dps, err := res.points()
		if err != nil {
			return nil, err
		}
		for _, d := range dps {
			series[d.InstanceID] = append(series[d.InstanceID], d)
		}
		if res.NextToken == "" {
			break
		}
		q.Set("NextToken", res.NextToken)
	}
	return qpsPoints(ids, series), nil
}

// maxTimestamp bounds a datapoint's milliseconds so that its nanoseconds
// fit an int64 (the year 2262).
const maxTimestamp = math.MaxInt64 / int64(time.Millisecond)

// points decodes the page's Datapoints, a JSON list inside a JSON string.
// A point whose timestamp is not a time is refused with the page, as is
// one whose Average is negative: a QPS never is.
func (res *cmsResult) points() ([]datapoint, error) {
	if res.Datapoints == "" {
		return nil, nil
	}
	var dps []datapoint
	if err := json.Unmarshal([]byte(res.Datapoints), &dps); err != nil {
		return nil, fmt.Errorf("DescribeMetricList: Datapoints is not a JSON list of points: %w", err)
	}
	for _, d := range dps {
		if d.Timestamp <= 0 || d.Timestamp > maxTimestamp {
			return nil, fmt.Errorf("DescribeMetricList: %.80q: timestamp %d is not milliseconds since 1970", d.InstanceID, d.Timestamp)
		}
		if d.Average < 0 {
			return nil, fmt.Errorf("DescribeMetricList: %.80q: negative QPS %v", d.InstanceID, d.Average)
		}
	}
	return dps, nil
}

// qpsPoints turns each named load balancer's series into its newest QPS
// and that QPS's change against the mean of the earlier points.
func qpsPoints(ids []string, series map[string][]datapoint) []sdk.Point {
	var pts []sdk.Point
	for _, id := range ids {
		s := series[id]
		if len(s) == 0 {
			continue
		}
		slices.SortStableFunc(s, func(a, b datapoint) int { return cmp.Compare(a.Timestamp, b.Timestamp) })
		last := s[len(s)-1]
		at := last.Timestamp * int64(time.Millisecond)
		pts = append(pts, sdk.Point{Name: metricQPS, Value: last.Average, Unit: "{request}/s", Attributes: map[string]string{attrLB: id}, TimeUnixNano: at})
		if len(s) < 2 {
			continue
		}
		var sum float64
		for _, d := range s[:len(s)-1] {
			sum += d.Average
		}
		base := sum / float64(len(s)-1)
		// A base so small that the ratio overflows says nothing a rule
		// could use.
		if change := last.Average/base - 1; base > 0 && !math.IsInf(change, 0) && !math.IsNaN(change) {
			pts = append(pts, sdk.Point{Name: metricChange, Value: change, Unit: "1", Attributes: map[string]string{attrLB: id}, TimeUnixNano: at})
		}
	}
	return pts
}

type cmsResult struct {
	Code       string          `json:"Code"`
	Message    string          `json:"Message"`
	Success    json.RawMessage `json:"Success"`
	NextToken  string          `json:"NextToken"`
	Datapoints string          `json:"Datapoints"`
}

// cmsCall sends one GET signed with the RPC signature v1, retrying
// throttling and 5xx with backoff, and expired STS credentials once after
// fetching new ones from the RAM role.
func (p *probe) cmsCall(ctx context.Context, u *url.URL, params url.Values, out *cmsResult) error {
	refreshed := false
	return cloudapi.Retry(ctx, 4, 200*time.Millisecond, func() error {
		creds, err := p.creds.Get(ctx)
		if err != nil {
			return err
		}
		q := url.Values{}
		for k, v := range params {
			q[k] = v
		}
		nonce := make([]byte, 16)
		rand.Read(nonce)
		q.Set("AccessKeyId", creds.AccessKeyID)
		q.Set("SignatureMethod", "HMAC-SHA1")
		q.Set("SignatureVersion", "1.0")
		q.Set("SignatureNonce", hex.EncodeToString(nonce))
		q.Set("Timestamp", time.Now().UTC().Format("2006-01-02T15:04:05Z"))
		if creds.SessionToken != "" {
			q.Set("SecurityToken", creds.SessionToken)
		}
		q.Set("Signature", cloudapi.SignRPC(http.MethodGet, q, creds.Secret))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String()+"/?"+q.Encode(), nil)
		if err != nil {
			return fmt.Errorf("DescribeMetricList: %w", err)
		}
		r, err := p.api.Do(req)
		if err != nil {
			return fmt.Errorf("DescribeMetricList: %w", err)
		}
		*out = cmsResult{}
		jerr := json.Unmarshal(r.Body, out)
		if r.Status == http.StatusOK && jerr == nil && (out.Code == "" || out.Code == "200") {
			return nil
		}
		if r.Status == http.StatusOK && jerr != nil {
			return fmt.Errorf("DescribeMetricList: the answer is not JSON: %w", jerr)
		}
		err = fmt.Errorf("DescribeMetricList: HTTP %d %s: %.200s", r.Status, out.Code, out.Message)
		switch {
		case strings.HasPrefix(out.Code, "InvalidSecurityToken") && !refreshed:
			refreshed = true
			p.creds.Invalidate()
			return fmt.Errorf("%w: %w", cloudapi.ErrRetry, err)
		case strings.HasPrefix(out.Code, "Throttling") || r.Status == http.StatusTooManyRequests || r.Status >= 500:
			return fmt.Errorf("%w: %w", cloudapi.ErrRetry, err)
		}
		return err
	})
}
