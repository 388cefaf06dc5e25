package aws

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gopatrol/gopatrol/plugins/sdk"
	"github.com/gopatrol/gopatrol/plugins/sdk/metadata"
)

// Collect reads the ENA allowance counters of the node (always: no
// credentials, no cost) and, when GOPATROL_AWS_CLOUDWATCH_INTERVAL is
// set, CloudWatch's metrics for the instance at most once per interval;
// between calls it answers CloudWatch's last points again. A failed
// CloudWatch call is this collection's error; Detect is unaffected.
func (p *probe) Collect(ctx context.Context) ([]sdk.Point, error) {
	now := time.Now()
	ifs, err := interfaces()
	if err != nil {
		return nil, err
	}
	pts, enaErr := enaPoints(ifs, ethtoolStats, now)
	every, err := cloudWatchInterval()
	if err != nil {
		return nil, err
	}
	p.cw.Every = every
	cw, cwErr := p.cw.Points(now, func() ([]sdk.Point, error) { return p.collectCloudWatch(ctx, now) })
	if cwErr != nil {
		cwErr = fmt.Errorf("CloudWatch: %w", cwErr)
	}
	pts = append(pts, cw...)
	if err := errors.Join(enaErr, cwErr); err != nil {
		return nil, err
	}
	return pts, nil
}

func (p *probe) collectCloudWatch(ctx context.Context, now time.Time) ([]sdk.Point, error) {
	base, err := metadata.Endpoint(endpointEnv, defaultURL)
	if err != nil {
		return nil, err
	}
	id, err := p.identity(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("instance identity: %w", err)
	}
	return p.cloudWatch(ctx, id, now)
}
