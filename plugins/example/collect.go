package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// dropsEnv overrides the file holding the node's dropped packet count.
const dropsEnv = "EXAMPLE_CLOUD_DROPS_FILE"

const defaultDrops = "/run/example-cloud/dropped_packets"

// Collect makes the probe a sdk.Collector: it returns points named after
// the agent's catalogue (gopatrol.cloud.*) with their unit. Points are
// cheap to ask for; an API that costs money is called through a
// cloudapi.Sampler. An error fails this collection only: Detect goes on.
func (probe) Collect(ctx context.Context) ([]sdk.Point, error) {
	path := os.Getenv(dropsEnv)
	if path == "" {
		path = defaultDrops
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dropped packets: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s: want a packet count: %w", path, err)
	}
	return []sdk.Point{{
		Name: "gopatrol.cloud.network.allowance_exceeded", Value: float64(n), Unit: "{packet}",
		Attributes:   map[string]string{"gopatrol.cloud.allowance": "pps"},
		TimeUnixNano: time.Now().UnixNano(),
	}}, nil
}
