package aws

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/gopatrol/gopatrol/plugins/sdk"
	"github.com/gopatrol/gopatrol/plugins/sdk/cloudapi"
	"github.com/gopatrol/gopatrol/plugins/sdk/metadata"
)

const (
	// intervalEnv turns CloudWatch on: GetMetricData costs money per
	// metric requested, so it is off unless set, and never more often
	// than minInterval.
	intervalEnv = "GOPATROL_AWS_CLOUDWATCH_INTERVAL"
	minInterval = time.Minute
	cwPeriod    = 300 // seconds: EC2 basic monitoring
	maxPages    = 10
	// maxAttempts bounds the SDK's retryer (throttling, 5xx, dropped
	// connections), maxBackoff its longest wait; the call's deadline
	// bounds both.
	maxAttempts = 4
	maxBackoff  = time.Second
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

// cwClient is a CloudWatch client of the SDK for one region, made once:
// the credentials it caches live as long as the probe.
type cwClient struct {
	region string
	api    *cloudwatch.Client
	// creds is the SDK's credential cache, dropped when CloudWatch says
	// the credentials expired before their announced end.
	creds *aws.CredentialsCache
}

// newCloudWatch loads the SDK's configuration for region. Credentials:
// the usual variables (AWS_ACCESS_KEY_ID..., and the SDK's other
// environment sources), else the instance role through IMDSv2, asked
// through the metadata client (never a proxy) at the SDK's own override
// AWS_EC2_METADATA_SERVICE_ENDPOINT. The shared files (~/.aws/config,
// ~/.aws/credentials) are not read: they belong to whoever runs the
// agent, not to this node's identity. The endpoint is the SDK's own, so
// AWS_ENDPOINT_URL_CLOUDWATCH overrides it. CloudWatch is asked through
// the SDK's transport (so AWS_CA_BUNDLE applies) under cloudapi's bounds.
// The SDK logs nothing.
func (p *probe) newCloudWatch(ctx context.Context, region string) (*cwClient, error) {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(region),
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
		config.WithHTTPClient(awshttp.NewBuildableClient()),
		config.WithEC2RoleCredentialOptions(func(o *ec2rolecreds.Options) {
			o.Client = imds.New(imds.Options{HTTPClient: p.imdsHTTP()})
		}),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = maxAttempts
				o.MaxBackoff = maxBackoff
			})
		}),
		config.WithLogger(logging.Nop{}),
		config.WithClientLogMode(0),
	)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	var base *http.Transport
	if b, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		base = b.GetTransport()
	}
	c := &cwClient{region: region, api: cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
		o.HTTPClient = cloudapi.NewHTTPClient(base)
	})}
	c.creds, _ = cfg.Credentials.(*aws.CredentialsCache)
	return c, nil
}

// imdsHTTP is the metadata client's HTTP client (no proxy, the short
// dial) with its answers bounded as the metadata client bounds them.
func (p *probe) imdsHTTP() *http.Client {
	hc := *p.tokens.Client.HTTP
	hc.Transport = &cloudapi.BoundedTransport{Base: hc.Transport, MaxBody: metadata.MaxBody}
	return &hc
}

// cloudWatch asks GetMetricData for this instance's metrics over the last
// two periods, following NextToken through the SDK's paginator.
func (p *probe) cloudWatch(ctx context.Context, id identity, now time.Time) ([]sdk.Point, error) {
	if p.cwc == nil || p.cwc.region != id.Region {
		c, err := p.newCloudWatch(ctx, id.Region)
		if err != nil {
			return nil, err
		}
		p.cwc = c
	}
	in := &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(now.Add(-2 * cwPeriod * time.Second)),
		EndTime:   aws.Time(now),
		ScanBy:    types.ScanByTimestampDescending,
	}
	for _, c := range cwQueries {
		in.MetricDataQueries = append(in.MetricDataQueries, types.MetricDataQuery{
			Id: aws.String(c.id),
			MetricStat: &types.MetricStat{
				Metric: &types.Metric{
					Namespace: aws.String("AWS/EC2"), MetricName: aws.String(c.metric),
					Dimensions: []types.Dimension{{Name: aws.String("InstanceId"), Value: aws.String(id.InstanceID)}},
				},
				Period: aws.Int32(cwPeriod), Stat: aws.String(c.stat),
			},
		})
	}
	pager := cloudwatch.NewGetMetricDataPaginator(p.cwc.api, in, func(o *cloudwatch.GetMetricDataPaginatorOptions) {
		o.StopOnDuplicateToken = true
	})
	latest := map[string]float64{}
	for page := 0; pager.HasMorePages(); page++ {
		if page == maxPages {
			return nil, fmt.Errorf("GetMetricData: more than %d pages: refusing to follow NextToken further", maxPages)
		}
		out, err := p.cwc.page(ctx, pager)
		if err != nil {
			return nil, err
		}
		if err := merge(out.MetricDataResults, latest); err != nil {
			return nil, err
		}
	}
	return cwPoints(latest, now), nil
}

// page asks for the pager's next page. Credentials CloudWatch calls
// expired are dropped and the page asked again once: the instance role's
// are rotated early, and the SDK's cache would keep them till their end.
func (c *cwClient) page(ctx context.Context, pager *cloudwatch.GetMetricDataPaginator) (*cloudwatch.GetMetricDataOutput, error) {
	out, err := pager.NextPage(ctx)
	var api smithy.APIError
	if errors.As(err, &api) && (api.ErrorCode() == "ExpiredToken" || api.ErrorCode() == "ExpiredTokenException") && c.creds != nil {
		c.creds.Invalidate()
		out, err = pager.NextPage(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("GetMetricData: %w", err)
	}
	return out, nil
}

// merge adds each result's newest value (ScanBy=TimestampDescending puts
// it first) to latest, unless an earlier page or result already gave its
// query one. A value that is not a finite number refuses the page:
// CloudWatch never sends one, and NaN or Inf would poison every rule
// that reads the point.
func merge(results []types.MetricDataResult, latest map[string]float64) error {
	for _, r := range results {
		id := aws.ToString(r.Id)
		if _, seen := latest[id]; seen || len(r.Values) == 0 {
			continue
		}
		v := r.Values[0]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("GetMetricData: %.40q value %v: want a finite number", id, v)
		}
		latest[id] = v
	}
	return nil
}

// cwPoints turns the queries' values into points at now, in the order of
// cwQueries; a query without a value (no CPU credits on a non-burstable
// type) gives none.
func cwPoints(latest map[string]float64, now time.Time) []sdk.Point {
	var pts []sdk.Point
	for _, c := range cwQueries {
		v, ok := latest[c.id]
		if !ok {
			continue
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
	return pts
}
