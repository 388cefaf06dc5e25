package alibaba

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	alisdk "github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	alierrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/cms"

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

// cmsEndpoint is CloudMonitor's endpoint: GOPATROL_ALIBABA_CMS_ENDPOINT
// (passed into the SDK's request), else the region's public one.
func cmsEndpoint(region string) (*url.URL, error) {
	endpoint := os.Getenv(cmsEndpointEnv)
	if endpoint == "" {
		endpoint = "https://metrics." + region + ".aliyuncs.com"
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("%s=%q: want https://host[:port]", cmsEndpointEnv, endpoint)
	}
	return u, nil
}

func (p *probe) slbQPS(ctx context.Context, ids []string, now time.Time) ([]sdk.Point, error) {
	region, err := p.meta(ctx, "/latest/meta-data/region-id")
	if err != nil {
		return nil, fmt.Errorf("region: %w", err)
	}
	u, err := cmsEndpoint(region)
	if err != nil {
		return nil, err
	}
	client, err := p.cmsClient(ctx, region)
	if err != nil {
		return nil, err
	}
	dims := make([]map[string]string, len(ids))
	for i, id := range ids {
		dims[i] = map[string]string{"instanceId": id}
	}
	dj, _ := json.Marshal(dims)
	req := cms.CreateDescribeMetricListRequest()
	req.Scheme, req.Domain = u.Scheme, u.Host
	req.Namespace, req.MetricName, req.Period = "acs_slb_dashboard", "Qps", "60"
	req.Dimensions, req.Length = string(dj), "1000"
	req.StartTime = strconv.FormatInt(now.Add(-window).UnixMilli(), 10)
	req.EndTime = strconv.FormatInt(now.UnixMilli(), 10)
	series := map[string][]datapoint{}
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("DescribeMetricList: more than %d pages: refusing to follow NextToken further", maxPages)
		}
		res, err := p.describe(ctx, client, req)
		if err != nil {
			return nil, err
		}
		dps, err := points(res.Datapoints)
		if err != nil {
			return nil, err
		}
		for _, d := range dps {
			series[d.InstanceID] = append(series[d.InstanceID], d)
		}
		if res.NextToken == "" {
			break
		}
		req.NextToken = res.NextToken
	}
	return qpsPoints(ids, series), nil
}

// maxTimestamp bounds a datapoint's milliseconds so that its nanoseconds
// fit an int64 (the year 2262).
const maxTimestamp = math.MaxInt64 / int64(time.Millisecond)

// points decodes a page's Datapoints, a JSON list inside the JSON string
// the SDK hands over. A point whose timestamp is not a time is refused
// with the page, as is one whose Average is negative: a QPS never is.
func points(datapoints string) ([]datapoint, error) {
	if datapoints == "" {
		return nil, nil
	}
	var dps []datapoint
	if err := json.Unmarshal([]byte(datapoints), &dps); err != nil {
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

// cmsClient is a CloudMonitor client of Alibaba Cloud's SDK for this
// collection: its requests carry ctx (the SDK's calls take none), go
// through the bounded HTTP client, and are signed by the SDK with the
// credentials of p.creds. The SDK's own retries are off (they have no
// backoff and skip throttling, which CloudMonitor answers with a 4xx as
// often as a 503): describe retries. The SDK's log is never enabled.
func (p *probe) cmsClient(ctx context.Context, region string) (*cms.Client, error) {
	conf := alisdk.NewConfig()
	conf.AutoRetry = false
	conf.Transport = ctxTransport{ctx: ctx, base: p.api.Transport}
	conf.Timeout = cmsTimeout
	c, err := cms.NewClientWithOptions(region, conf, credsProvider{ctx: ctx, cache: &p.creds})
	if err != nil {
		return nil, fmt.Errorf("CloudMonitor client: %w", err)
	}
	return c, nil
}

// cmsTimeout bounds one request when the collection's deadline is later.
const cmsTimeout = 10 * time.Second

// ctxTransport gives every request of the SDK the collection's context,
// so the host's deadline ends a request in flight.
type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(req.WithContext(t.ctx))
}

// credsProvider hands the SDK's signer the probe's credentials: the
// usual variables, else the ECS RAM role fetched and refreshed through
// the metadata client. The SDK's own RAM-role provider cannot be used:
// it asks 100.100.100.200 with no override and no token-mode TTL choice.
type credsProvider struct {
	ctx   context.Context
	cache *cloudapi.CredentialCache
}

func (c credsProvider) GetCredentials() (*credentials.Credentials, error) {
	cr, err := c.cache.Get(c.ctx)
	if err != nil {
		return nil, err
	}
	return &credentials.Credentials{AccessKeyId: cr.AccessKeyID, AccessKeySecret: cr.Secret, SecurityToken: cr.SessionToken, ProviderName: c.GetProviderName()}, nil
}

func (credsProvider) GetProviderName() string { return "gopatrol_probe" }

// describe asks for one page, retrying throttling and 5xx with backoff,
// and expired STS credentials once after fetching new ones from the RAM
// role. Errors carry CloudMonitor's code and message, never the SDK's
// own text: that quotes the request URL and the string it signed, both
// holding the security token.
func (p *probe) describe(ctx context.Context, client *cms.Client, req *cms.DescribeMetricListRequest) (*cms.DescribeMetricListResponse, error) {
	refreshed := false
	var res *cms.DescribeMetricListResponse
	err := cloudapi.Retry(ctx, 4, 200*time.Millisecond, func() error {
		r, err := client.DescribeMetricList(req)
		status, code, msg := 0, "", ""
		var se *alierrors.ServerError
		switch {
		case errors.As(err, &se):
			status, code, msg = se.HttpStatus(), se.ErrorCode(), se.Message()
		case err != nil:
			return fmt.Errorf("DescribeMetricList: %w", redact(err))
		case r.Code != "" && r.Code != "200": // failures answered with HTTP 200
			status, code, msg = r.GetHttpStatus(), r.Code, r.Message
		default:
			res = r
			return nil
		}
		err = fmt.Errorf("DescribeMetricList: HTTP %d %s: %.200s", status, code, msg)
		switch {
		case strings.HasPrefix(code, "InvalidSecurityToken") && !refreshed:
			refreshed = true
			p.creds.Invalidate()
			return fmt.Errorf("%w: %w", cloudapi.ErrRetry, err)
		case strings.HasPrefix(code, "Throttling") || status == http.StatusTooManyRequests || status >= 500:
			return fmt.Errorf("%w: %w", cloudapi.ErrRetry, err)
		}
		return err
	})
	return res, err
}

// redact drops the request URL (signed, with the security token in its
// query) from a transport error, keeping its host and cause.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		host := ""
		if u, perr := url.Parse(ue.URL); perr == nil {
			host = u.Host
		}
		return fmt.Errorf("%s %s: %w", ue.Op, host, ue.Err)
	}
	var ce *alierrors.ClientError
	if errors.As(err, &ce) {
		if o := ce.OriginError(); o != nil {
			return fmt.Errorf("%s: %w", ce.ErrorCode(), redact(o))
		}
		return fmt.Errorf("%s: %s", ce.ErrorCode(), ce.Message())
	}
	return err
}
