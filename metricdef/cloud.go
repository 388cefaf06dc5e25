package metricdef

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Attribute keys of the cloud metrics the probe plugins collect. The
// names are the same on every cloud (cloud.* on the resource says which),
// so one rule ("packet drops rising on this node") fits them all.
const (
	AttrCloudAllowance = attribute.Key("gopatrol.cloud.allowance")
	AttrCloudLBID      = attribute.Key("gopatrol.cloud.lb.id")
	AttrInterfaceName  = attribute.Key("network.interface.name")
	AttrIODirection    = attribute.Key("network.io.direction")
	AttrNodeCondType   = attribute.Key("k8s.node.condition.type")
	AttrNodeCondStatus = attribute.Key("k8s.node.condition.status")
	AttrK8sNodeName    = attribute.Key("k8s.node.name")
)

// The cloud instruments: gauges of what a probe's Collect answers, as it
// answers it (cumulative counters of a driver stay cumulative: rate them).
var (
	SpecCloudAllowanceExceeded = Spec{
		Name: "gopatrol.cloud.network.allowance_exceeded", Kind: KindGauge, Unit: "{packet}",
		Description: "Packets the cloud dropped or queued because the instance exceeded a network allowance (bandwidth in/out, packets per second, connection tracking, link-local), cumulative since the driver loaded.",
		Attributes:  []attribute.Key{AttrProbePlugin, AttrCloudAllowance, AttrInterfaceName},
	}
	SpecCloudNetworkPackets = Spec{
		Name: "gopatrol.cloud.network.packets", Kind: KindGauge, Unit: "{packet}",
		Description: "Packets the instance received or sent in the cloud monitor's latest period (e.g. CloudWatch NetworkPacketsIn/Out over 5 minutes).",
		Attributes:  []attribute.Key{AttrProbePlugin, AttrIODirection},
	}
	SpecCloudCPUCreditBalance = Spec{
		Name: "gopatrol.cloud.cpu.credit_balance", Kind: KindGauge, Unit: "{credit}",
		Description: "CPU credits a burstable instance has left (CloudWatch CPUCreditBalance).",
		Attributes:  []attribute.Key{AttrProbePlugin},
	}
	SpecCloudLBRequestRate = Spec{
		Name: "gopatrol.cloud.lb.requests.rate", Kind: KindGauge, Unit: "{request}/s",
		Description: "Requests per second of a cloud load balancer in its latest minute (Alibaba SLB Qps).",
		Attributes:  []attribute.Key{AttrProbePlugin, AttrCloudLBID},
	}
	SpecCloudLBRequestChange = Spec{
		Name: "gopatrol.cloud.lb.requests.change", Kind: KindGauge, Unit: "1",
		Description: "Change of a load balancer's request rate against the mean of the previous ten minutes (0.5 is 50% more).",
		Attributes:  []attribute.Key{AttrProbePlugin, AttrCloudLBID},
	}
	SpecCloudNodeCondition = Spec{
		Name: "gopatrol.cloud.node.condition", Kind: KindGauge, Unit: "1",
		Description: "1 for each condition of the Kubernetes node as the API server has it, with its status (true, false, unknown).",
		Attributes:  []attribute.Key{AttrProbePlugin, AttrNodeCondType, AttrNodeCondStatus, AttrK8sNodeName},
	}
)

// CloudSpecs are the instruments a probe's points are recorded on, by
// point name; a point of another name, or in another unit, is dropped.
var CloudSpecs = []Spec{
	SpecCloudAllowanceExceeded, SpecCloudNetworkPackets, SpecCloudCPUCreditBalance,
	SpecCloudLBRequestRate, SpecCloudLBRequestChange, SpecCloudNodeCondition,
}

func newCloudGauges(errs *[]error, m metric.Meter) map[string]metric.Float64Gauge {
	g := make(map[string]metric.Float64Gauge, len(CloudSpecs))
	for _, s := range CloudSpecs {
		g[s.Name] = create(errs, s, m.Float64Gauge)
	}
	return g
}
