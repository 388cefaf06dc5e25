package aws

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gopatrol/gopatrol/plugins/sdk"
	"github.com/gopatrol/gopatrol/plugins/sdk/cloudapi"
)

const (
	// intervalEnv turns CloudWatch on: GetMetricData costs money per
	// metric requested, so it is off unless set, and never more often
	// than minInterval.
	intervalEnv = "GOPATROL_AWS_CLOUDWATCH_INTERVAL"
	minInterval = time.Minute
	// cloudWatchEnv is the SDKs' service-specific endpoint override.
	cloudWatchEnv = "AWS_ENDPOINT_URL_CLOUDWATCH"
	credsPath     = "/latest/meta-data/iam/security-credentials/"
	cwPeriod      = 300 // seconds: EC2 basic monitoring
	maxPages      = 10
)

// cloudWatchInterval reads intervalEnv: 0 (off) when unset.
func cloudWatchInterval() (time.Duration, error) {
	raw := os.Getenv(intervalEnv)
	if raw == "" || raw == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d < minInterval {
		return 0, fmt.Errorf("%s=%q: want a duration of at least %v (CloudWatch bills each metric requested), or 0 for off", intervalEnv, raw, minInterval)
	}
	return d, nil
}

// The EC2 metrics asked for, by query id.
var cwQueries = []struct{ id, metric, stat, name, unit string }{
	{"pin", "NetworkPacketsIn", "Sum", metricPackets, "{packet}"},
	{"pout", "NetworkPacketsOut", "Sum", metricPackets, "{packet}"},
	{"credit", "CPUCreditBalance", "Average", metricCreditBalance, "{credit}"},
}

// credentials come from the usual variables, else from the instance
// role through IMDSv2.
func (p *probe) fetchCredentials(ctx context.Context) (cloudapi.Credentials, error) {
	if id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		return cloudapi.Credentials{AccessKeyID: id, Secret: secret, SessionToken: os.Getenv("AWS_SESSION_TOKEN")}, nil
	}
	role, err := p.imds(ctx, credsPath)
	if err != nil {
		return cloudapi.Credentials{}, fmt.Errorf("instance role: %w", err)
	}
	name, err := cloudapi.RoleName(string(role))
	if err != nil {
		return cloudapi.Credentials{}, fmt.Errorf("GET %s: %w", credsPath, err)
	}
	b, err := p.imds(ctx, credsPath+name)
	if err != nil {
		return cloudapi.Credentials{}, err
	}
	return cloudapi.RoleCredentials(b, "SecretAccessKey", "Token")
}

// cloudWatch asks GetMetricData (query protocol) for this instance's
// metrics over the last two periods, following NextToken.
func (p *probe) cloudWatch(ctx context.Context, id identity, now time.Time) ([]sdk.Point, error) {
	endpoint := os.Getenv(cloudWatchEnv)
	if endpoint == "" {
		endpoint = "https://monitoring." + id.Region + ".amazonaws.com"
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%s=%q: want https://host[:port]", cloudWatchEnv, endpoint)
	}
	q := url.Values{
		"Action": {"GetMetricData"}, "Version": {"2010-08-01"},
		"StartTime": {now.Add(-2 * cwPeriod * time.Second).UTC().Format(time.RFC3339)},
		"EndTime":   {now.UTC().Format(time.RFC3339)}, "ScanBy": {"TimestampDescending"},
	}
	for i, c := range cwQueries {
		m := fmt.Sprintf("MetricDataQueries.member.%d.", i+1)
		q.Set(m+"Id", c.id)
		q.Set(m+"MetricStat.Metric.Namespace", "AWS/EC2")
		q.Set(m+"MetricStat.Metric.MetricName", c.metric)
		q.Set(m+"MetricStat.Metric.Dimensions.member.1.Name", "InstanceId")
		q.Set(m+"MetricStat.Metric.Dimensions.member.1.Value", id.InstanceID)
		q.Set(m+"MetricStat.Period", strconv.Itoa(cwPeriod))
		q.Set(m+"MetricStat.Stat", c.stat)
	}
	latest := map[string]float64{}
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("GetMetricData: more than %d pages: refusing to follow NextToken further", maxPages)
		}
		var res getMetricDataResult
		if err := p.cwCall(ctx, u, id.Region, q, &res); err != nil {
			return nil, err
		}
		next, err := res.merge(latest)
		if err != nil {
			return nil, err
		}
		if next == "" {
			break
		}
		q.Set("NextToken", next)
	}
	var pts []sdk.Point
	for _, c := range cwQueries {
		v, ok := latest[c.id]
		if !ok {
			continue // e.g. no CPU credits on a non-burstable type
		}
		attrs := map[string]string{}
		switch c.id {
		case "pin":
			attrs[attrDirection] = "receive"
		case "pout":
			attrs[attrDirection] = "transmit"
		}
		pts = append(pts, sdk.Point{Name: c.name, Value: v, Unit: c.unit, Attributes: attrs, TimeUnixNano: now.UnixNano()})
	}
	return pts, nil
}

type getMetricDataResult struct {
	Results []struct {
		ID     string   `xml:"Id"`
		Values []string `xml:"Values>member"`
	} `xml:"GetMetricDataResult>MetricDataResults>member"`
	NextToken string `xml:"GetMetricDataResult>NextToken"`
}

// merge adds the page's newest value of each query not seen on an
// earlier page to latest (ScanBy=TimestampDescending puts it first) and
// returns the NextToken. A value that is not a finite number refuses the
// page: CloudWatch never sends one, and NaN or Inf would poison every rule
// that reads the point.
func (res *getMetricDataResult) merge(latest map[string]float64) (string, error) {
	for _, r := range res.Results {
		if _, seen := latest[r.ID]; seen || len(r.Values) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(r.Values[0]), 64)
		if err != nil {
			return "", fmt.Errorf("GetMetricData: %s value %.40q: %w", r.ID, r.Values[0], err)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "", fmt.Errorf("GetMetricData: %s value %.40q: want a finite number", r.ID, r.Values[0])
		}
		latest[r.ID] = v
	}
	return strings.TrimSpace(res.NextToken), nil
}

type apiError struct {
	Code    string `xml:"Error>Code"`
	Message string `xml:"Error>Message"`
}

// cwCall sends one signed GetMetricData page (a form POST, as the SDKs'
// query protocol does), retrying throttling and 5xx with backoff and
// expired credentials once after fetching new ones.
func (p *probe) cwCall(ctx context.Context, u *url.URL, region string, q url.Values, out *getMetricDataResult) error {
	body := []byte(q.Encode())
	refreshed := false
	return cloudapi.Retry(ctx, 4, 200*time.Millisecond, func() error {
		creds, err := p.creds.Get(ctx)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String()+"/", bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("GetMetricData: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		cloudapi.SigV4{Region: region, Service: "monitoring"}.Sign(req, body, creds, time.Now())
		r, err := p.api.Do(req)
		if err != nil {
			return fmt.Errorf("GetMetricData: %w", err)
		}
		if r.Status == http.StatusOK {
			if err := xml.Unmarshal(r.Body, out); err != nil {
				return fmt.Errorf("GetMetricData: the answer is not GetMetricDataResponse XML: %w", err)
			}
			return nil
		}
		var e apiError
		_ = xml.Unmarshal(r.Body, &e)
		err = fmt.Errorf("GetMetricData: HTTP %d %s: %.200s", r.Status, e.Code, e.Message)
		switch {
		case e.Code == "ExpiredToken":
			if refreshed {
				return err
			}
			refreshed = true
			p.creds.Invalidate()
			return fmt.Errorf("%w: %w", cloudapi.ErrRetry, err)
		case e.Code == "Throttling" || e.Code == "ThrottlingException" || r.Status == http.StatusTooManyRequests || r.Status >= 500:
			return fmt.Errorf("%w: %w", cloudapi.ErrRetry, err)
		}
		return err
	})
}
