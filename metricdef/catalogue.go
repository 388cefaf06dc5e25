package metricdef

import (
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Attribute keys of gopatrol's own (no semantic convention covers them).
const (
	AttrCheckID       = attribute.Key("gopatrol.check.id")
	AttrCheckStatus   = attribute.Key("gopatrol.check.status")
	AttrGoSubcommand  = attribute.Key("gopatrol.go.subcommand")
	AttrFileClass     = attribute.Key("gopatrol.file.class")
	AttrConnectResult = attribute.Key("gopatrol.connect.result")
	AttrTLSOutcome    = attribute.Key("gopatrol.tls.outcome")
	AttrSensorProgram = attribute.Key("gopatrol.sensor.program")
	AttrProbePlugin   = attribute.Key("gopatrol.probe.plugin")
	AttrRuleName      = attribute.Key("gopatrol.rule.name")
	AttrRuleStage     = attribute.Key("gopatrol.rule.stage")
	AttrRuleLabels    = attribute.Key("gopatrol.rule.labels")
	AttrGroup         = attribute.Key("gopatrol.group")
	// AttrRuleAction is remediate or webhook; AttrRuleOutcome what it
	// came to (held, not_held, refused, error, delivered, skipped,
	// rate_limited).
	AttrRuleAction   = attribute.Key("gopatrol.rule.action")
	AttrRuleOutcome  = attribute.Key("gopatrol.rule.action.outcome")
	AttrReloadResult = attribute.Key("gopatrol.reload.result")
	AttrCheckSet     = attribute.Key("gopatrol.check.set")
)

// FileClasses are the values of AttrFileClass: the toolchain directory a
// failing path is under (the go env variable, lower-case), relative for a
// path the kernel could not resolve, other for none. They are exactly what
// the sensor emits (bpf.Class.String), which a test keeps so.
var FileClasses = []string{"goroot", "gomodcache", "gocache", "gobin", "gotmpdir", "relative", "other"}

// Semantic-convention keys the catalogue uses.
const (
	AttrErrorType      = semconv.ErrorTypeKey             // error.type: errno name (EACCES) or Go error class
	AttrServerAddress  = semconv.ServerAddressKey         // server.address
	AttrServerPort     = semconv.ServerPortKey            // server.port
	AttrExecutableName = semconv.ProcessExecutableNameKey // process.executable.name
)

// Instrument kinds, as docs/metrics.md names them.
const (
	KindCounter   = "Counter"
	KindHistogram = "Histogram"
	KindGauge     = "Gauge"
)

// Spec describes one instrument.
type Spec struct {
	Name        string
	Kind        string
	Unit        string
	Description string
	Attributes  []attribute.Key
	// Buckets are the explicit histogram boundaries (seconds).
	Buckets []float64
}

var (
	checkBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	execBuckets  = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}
	tlsBuckets   = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	ruleSeries   = []attribute.Key{AttrRuleName, AttrRuleStage, AttrRuleLabels}
)

// The catalogue, one variable per instrument so that Instruments and the
// docs test refer to the same values.
var (
	SpecCheckResult = Spec{
		Name: "gopatrol.check.result", Kind: KindGauge, Unit: "1",
		Description: "Outcome of the latest run of a check: 1 for its status, 0 for every other status (one point per check and status).",
		Attributes:  []attribute.Key{AttrCheckID, AttrCheckStatus},
	}
	SpecCheckDuration = Spec{
		Name: "gopatrol.check.duration", Kind: KindHistogram, Unit: "s",
		Description: "Time a check took to run (a kept proof of the toolchain did not run and records none).",
		Attributes:  []attribute.Key{AttrCheckID, AttrCheckStatus},
		Buckets:     checkBuckets,
	}
	SpecHealthScore = Spec{
		Name: "gopatrol.health.score", Kind: KindGauge, Unit: "1",
		Description: "Health of the Go environment from 0 to 100: in the agent with the doctor's rules, the score of their group (100 − Σ weight·log2(minutes failing + 1)); otherwise 100 × (passes + 0.5 × warnings) / checks that did not skip.",
	}
	SpecToolchainExecs = Spec{
		Name: "gopatrol.toolchain.execs", Kind: KindCounter, Unit: "{exec}",
		Description: "Executions of toolchain programs (go, compile, link, cgo, gcc) seen by the exec sensor.",
		Attributes:  []attribute.Key{AttrExecutableName},
	}
	SpecToolchainInvocationDuration = Spec{
		Name: "gopatrol.toolchain.invocation.duration", Kind: KindHistogram, Unit: "s",
		Description: "Wall time of a go command invocation, from exec to exit.",
		Attributes:  []attribute.Key{AttrGoSubcommand},
		Buckets:     execBuckets,
	}
	SpecFileAccessFailures = Spec{
		Name: "gopatrol.file_access.failures", Kind: KindCounter, Unit: "{failure}",
		Description: "Failed opens and accesses by toolchain processes, by the class of the path (goroot, gomodcache, gocache, gobin, gotmpdir, relative, other) and errno.",
		Attributes:  []attribute.Key{AttrFileClass, AttrErrorType},
	}
	SpecConnects = Spec{
		Name: "gopatrol.connects", Kind: KindCounter, Unit: "{connection}",
		Description: "Outgoing TCP connects by toolchain processes, by result (ok, refused, timeout, unreachable, other).",
		Attributes:  []attribute.Key{AttrConnectResult, AttrServerAddress, AttrServerPort},
	}
	SpecTLSHandshakes = Spec{
		Name: "gopatrol.tls.handshakes", Kind: KindCounter, Unit: "{handshake}",
		Description: "TLS handshakes by toolchain processes, by outcome (ok, failed); error.type names the failure.",
		Attributes:  []attribute.Key{AttrTLSOutcome, AttrErrorType, AttrServerAddress},
	}
	SpecTLSHandshakeDuration = Spec{
		Name: "gopatrol.tls.handshake.duration", Kind: KindHistogram, Unit: "s",
		Description: "Time a TLS handshake by a toolchain process took.",
		Attributes:  []attribute.Key{AttrTLSOutcome, AttrServerAddress},
		Buckets:     tlsBuckets,
	}
	SpecSensorLostEvents = Spec{
		Name: "gopatrol.sensor.lost_events", Kind: KindCounter, Unit: "{event}",
		Description: "Events an eBPF sensor dropped because its ring buffer was full.",
		Attributes:  []attribute.Key{AttrSensorProgram},
	}
	SpecSensorProgramRunTime = Spec{
		Name: "gopatrol.sensor.program.run_time", Kind: KindCounter, Unit: "s",
		Description: "CPU time the kernel spent in an eBPF program (from its run-time statistics, zero while they are off: bpf.Config.RunTime).",
		Attributes:  []attribute.Key{AttrSensorProgram},
	}
	SpecBuildCriticalPath = Spec{
		Name: "gopatrol.build.critical_path", Kind: KindHistogram, Unit: "s",
		Description: "Critical path of a finished go invocation tree: tool time along the chain of last-finishing tool runs (docs/traces.md).",
		Attributes:  []attribute.Key{AttrGoSubcommand},
		Buckets:     execBuckets,
	}
	SpecBuildTreesOverflow = Spec{
		Name: "gopatrol.build.trees.overflow", Kind: KindCounter, Unit: "{tree}",
		Description: "Go invocation trees not traced because the open-tree bound was reached (the oldest open tree is dropped).",
	}
	SpecProbeUp = Spec{
		Name: "gopatrol.probe.up", Kind: KindGauge, Unit: "1",
		Description: "1 if the cloud probe plugin answered its last health check, 0 if not.",
		Attributes:  []attribute.Key{AttrProbePlugin},
	}
	SpecRuleValue = Spec{
		Name: "gopatrol.rule.value", Kind: KindGauge, Unit: "1",
		Description: "Latest value a patrol rule measured, per rule and label set (in the rule's own unit).",
		Attributes:  ruleSeries,
	}
	SpecRuleState = Spec{
		Name: "gopatrol.rule.state", Kind: KindGauge, Unit: "1",
		Description: "Breach state of a patrol rule and label set: 0 healthy, 1 breaching but not yet firing, 2 firing.",
		Attributes:  ruleSeries,
	}
	SpecRuleBaselineMean = Spec{
		Name: "gopatrol.rule.baseline.mean", Kind: KindGauge, Unit: "1",
		Description: "EWMA mean of an ewma rule's baseline.",
		Attributes:  ruleSeries,
	}
	SpecRuleBaselineLower = Spec{
		Name: "gopatrol.rule.baseline.lower", Kind: KindGauge, Unit: "1",
		Description: "Lower edge of an ewma rule's band, mean − k·σ.",
		Attributes:  ruleSeries,
	}
	SpecRuleBaselineUpper = Spec{
		Name: "gopatrol.rule.baseline.upper", Kind: KindGauge, Unit: "1",
		Description: "Upper edge of an ewma rule's band, mean + k·σ.",
		Attributes:  ruleSeries,
	}
	SpecRuleEvaluationDuration = Spec{
		Name: "gopatrol.rule.evaluation.duration", Kind: KindHistogram, Unit: "s",
		Description: "Time a patrol rule's evaluation took.",
		Attributes:  []attribute.Key{AttrRuleName},
		Buckets:     checkBuckets,
	}
	SpecRuleEvaluationErrors = Spec{
		Name: "gopatrol.rule.evaluation.errors", Kind: KindCounter, Unit: "{error}",
		Description: "Evaluations of a patrol rule that gave no value (unknown).",
		Attributes:  []attribute.Key{AttrRuleName},
	}
	SpecRuleActions = Spec{
		Name: "gopatrol.rule.actions", Kind: KindCounter, Unit: "{action}",
		Description: "Actions of firing patrol rules (remediate, webhook) by what they came to: held, not_held, refused, error, delivered, skipped, rate_limited.",
		Attributes:  []attribute.Key{AttrRuleName, AttrRuleAction, AttrRuleOutcome},
	}
	SpecRuleRepairRate = Spec{
		Name: "gopatrol.rule.repair_rate", Kind: KindGauge, Unit: "1",
		Description: "Share of a patrol rule's remediate attempts whose fix held (the check passed on its rerun), since the state directory was created.",
		Attributes:  []attribute.Key{AttrRuleName},
	}
	SpecGroupScore = Spec{
		Name: "gopatrol.group.score", Kind: KindGauge, Unit: "1",
		Description: "Health score of a group of labels from 0 to 100: 100 − Σ weight·log2(minutes firing + 1), floored at 0.",
		Attributes:  []attribute.Key{AttrGroup},
	}
)

// Catalogue is every instrument, in the order of docs/metrics.md.
var Catalogue = []Spec{
	SpecCheckResult, SpecCheckDuration, SpecHealthScore,
	SpecToolchainExecs, SpecToolchainInvocationDuration,
	SpecFileAccessFailures, SpecConnects,
	SpecTLSHandshakes, SpecTLSHandshakeDuration,
	SpecSensorLostEvents, SpecSensorProgramRunTime,
	SpecBuildCriticalPath, SpecBuildTreesOverflow,
	SpecProbeUp,
	SpecRuleValue, SpecRuleState,
	SpecRuleBaselineMean, SpecRuleBaselineLower, SpecRuleBaselineUpper,
	SpecRuleEvaluationDuration, SpecRuleEvaluationErrors,
	SpecRuleActions, SpecRuleRepairRate,
	SpecGroupScore,
	SpecAgentExportFailures, SpecAgentReloads, SpecAgentPatrolsSkipped,
	SpecCloudAllowanceExceeded, SpecCloudNetworkPackets, SpecCloudCPUCreditBalance,
	SpecCloudLBRequestRate, SpecCloudLBRequestChange, SpecCloudNodeCondition,
}

// Instruments are the catalogue's instruments, created on one Meter; the
// doctor and the agent record through them.
type Instruments struct {
	CheckResult                 metric.Int64Gauge
	CheckDuration               metric.Float64Histogram
	HealthScore                 metric.Float64Gauge
	ToolchainExecs              metric.Int64Counter
	ToolchainInvocationDuration metric.Float64Histogram
	FileAccessFailures          metric.Int64Counter
	Connects                    metric.Int64Counter
	TLSHandshakes               metric.Int64Counter
	TLSHandshakeDuration        metric.Float64Histogram
	SensorLostEvents            metric.Int64Counter
	SensorProgramRunTime        metric.Float64Counter
	BuildCriticalPath           metric.Float64Histogram
	BuildTreesOverflow          metric.Int64Counter
	ProbeUp                     metric.Int64Gauge
	RuleValue                   metric.Float64Gauge
	RuleState                   metric.Int64Gauge
	RuleBaselineMean            metric.Float64Gauge
	RuleBaselineLower           metric.Float64Gauge
	RuleBaselineUpper           metric.Float64Gauge
	RuleEvaluationDuration      metric.Float64Histogram
	RuleEvaluationErrors        metric.Int64Counter
	RuleActions                 metric.Int64Counter
	RuleRepairRate              metric.Float64Gauge
	GroupScore                  metric.Float64Gauge
	AgentExportFailures         metric.Int64Counter
	AgentReloads                metric.Int64Counter
	AgentPatrolsSkipped         metric.Int64Counter
	// Cloud holds the CloudSpecs' gauges by metric name.
	Cloud map[string]metric.Float64Gauge
}

// NewInstruments creates every instrument of the catalogue on m.
func NewInstruments(m metric.Meter) (*Instruments, error) {
	var (
		in   Instruments
		errs []error
	)
	in.CheckResult = create(&errs, SpecCheckResult, m.Int64Gauge)
	in.CheckDuration = create(&errs, SpecCheckDuration, m.Float64Histogram)
	in.HealthScore = create(&errs, SpecHealthScore, m.Float64Gauge)
	in.ToolchainExecs = create(&errs, SpecToolchainExecs, m.Int64Counter)
	in.ToolchainInvocationDuration = create(&errs, SpecToolchainInvocationDuration, m.Float64Histogram)
	in.FileAccessFailures = create(&errs, SpecFileAccessFailures, m.Int64Counter)
	in.Connects = create(&errs, SpecConnects, m.Int64Counter)
	in.TLSHandshakes = create(&errs, SpecTLSHandshakes, m.Int64Counter)
	in.TLSHandshakeDuration = create(&errs, SpecTLSHandshakeDuration, m.Float64Histogram)
	in.SensorLostEvents = create(&errs, SpecSensorLostEvents, m.Int64Counter)
	in.SensorProgramRunTime = create(&errs, SpecSensorProgramRunTime, m.Float64Counter)
	in.BuildCriticalPath = create(&errs, SpecBuildCriticalPath, m.Float64Histogram)
	in.BuildTreesOverflow = create(&errs, SpecBuildTreesOverflow, m.Int64Counter)
	in.ProbeUp = create(&errs, SpecProbeUp, m.Int64Gauge)
	in.RuleValue = create(&errs, SpecRuleValue, m.Float64Gauge)
	in.RuleState = create(&errs, SpecRuleState, m.Int64Gauge)
	in.RuleBaselineMean = create(&errs, SpecRuleBaselineMean, m.Float64Gauge)
	in.RuleBaselineLower = create(&errs, SpecRuleBaselineLower, m.Float64Gauge)
	in.RuleBaselineUpper = create(&errs, SpecRuleBaselineUpper, m.Float64Gauge)
	in.RuleEvaluationDuration = create(&errs, SpecRuleEvaluationDuration, m.Float64Histogram)
	in.RuleEvaluationErrors = create(&errs, SpecRuleEvaluationErrors, m.Int64Counter)
	in.RuleActions = create(&errs, SpecRuleActions, m.Int64Counter)
	in.RuleRepairRate = create(&errs, SpecRuleRepairRate, m.Float64Gauge)
	in.GroupScore = create(&errs, SpecGroupScore, m.Float64Gauge)
	in.AgentExportFailures = create(&errs, SpecAgentExportFailures, m.Int64Counter)
	in.AgentReloads = create(&errs, SpecAgentReloads, m.Int64Counter)
	in.AgentPatrolsSkipped = create(&errs, SpecAgentPatrolsSkipped, m.Int64Counter)
	in.Cloud = newCloudGauges(&errs, m)
	if len(errs) > 0 {
		return nil, fmt.Errorf("create instruments: %v", errs)
	}
	return &in, nil
}

// create makes the instrument of s with newInst (m.Int64Gauge,
// m.Float64Histogram, ...) and keeps its error in errs. Each kind has its
// own option interface, and the API's generic options (unit, description,
// buckets) implement all of them, which the conversion to O relies on;
// only histograms have Buckets (TestInstrumentsMatchCatalogue).
func create[I any, O any](errs *[]error, s Spec, newInst func(string, ...O) (I, error)) I {
	opts := []O{any(metric.WithUnit(s.Unit)).(O), any(metric.WithDescription(s.Description)).(O)}
	if len(s.Buckets) > 0 {
		opts = append(opts, any(metric.WithExplicitBucketBoundaries(s.Buckets...)).(O))
	}
	inst, err := newInst(s.Name, opts...)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("instrument %s: %w", s.Name, err))
	}
	return inst
}
