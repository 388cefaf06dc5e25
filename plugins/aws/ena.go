package aws

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// Point names and attributes shared with the agent's catalogue
// (metricdef): the same names on every cloud, so one rule fits all.
const (
	metricAllowance     = "gopatrol.cloud.network.allowance_exceeded"
	attrAllowance       = "gopatrol.cloud.allowance"
	attrInterface       = "network.interface.name"
	metricPackets       = "gopatrol.cloud.network.packets"
	attrDirection       = "network.io.direction"
	metricCreditBalance = "gopatrol.cloud.cpu.credit_balance"
)

// enaCounters maps the ENA driver's ethtool statistics (driver 2.2.10 and
// later, docs "Monitor network performance for ENA settings") to the
// allowance attribute.
var enaCounters = map[string]string{
	"bw_in_allowance_exceeded":     "bw_in",
	"bw_out_allowance_exceeded":    "bw_out",
	"pps_allowance_exceeded":       "pps",
	"conntrack_allowance_exceeded": "conntrack",
	"linklocal_allowance_exceeded": "linklocal",
}

// statsFunc reads an interface's driver and ethtool statistics.
type statsFunc func(ifname string) (string, map[string]uint64, error)

// enaPoints reads the allowance counters of every ENA interface. An
// instance without ENA (older Xen types) has none: no points, no error.
func enaPoints(ifnames []string, read statsFunc, now time.Time) ([]sdk.Point, error) {
	var (
		pts  []sdk.Point
		errs []error
	)
	for _, ifn := range ifnames {
		driver, stats, err := read(ifn)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if driver != "ena" {
			continue
		}
		found := 0
		for stat, allowance := range enaCounters {
			v, ok := stats[stat]
			if !ok {
				continue
			}
			found++
			pts = append(pts, sdk.Point{
				Name: metricAllowance, Value: float64(v), Unit: "{packet}", TimeUnixNano: now.UnixNano(),
				Attributes: map[string]string{attrAllowance: allowance, attrInterface: ifn},
			})
		}
		if found == 0 {
			errs = append(errs, fmt.Errorf("%s: the ena driver has no allowance counters (ethtool -S): update it to 2.2.10 or later", ifn))
		}
	}
	return pts, errors.Join(errs...)
}

// interfaces lists the node's interfaces but loopback.
func interfaces() ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var names []string
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			names = append(names, i.Name)
		}
	}
	return names, nil
}
