package metricdef

import "go.opentelemetry.io/otel/attribute"

// The agent's self-telemetry: what only the daemon records (the doctor's
// `check --export` creates them too, and records nothing on them). The
// process's CPU, memory and Go runtime come from the contrib runtime
// instrumentation under its own names.
var (
	SpecAgentExportFailures = Spec{
		Name: "gopatrol.agent.export.failures", Kind: KindCounter, Unit: "{export}",
		Description: "Exports of the agent's metrics that failed (the next export carries the cumulative points again).",
		Attributes:  []attribute.Key{AttrErrorType},
	}
	SpecAgentReloads = Spec{
		Name: "gopatrol.agent.reloads", Kind: KindCounter, Unit: "{reload}",
		Description: "Config and rule reloads on SIGHUP, by result (ok, failed, rules_ok, rules_failed).",
		Attributes:  []attribute.Key{AttrReloadResult},
	}
	SpecAgentPatrolsSkipped = Spec{
		Name: "gopatrol.agent.patrols.skipped", Kind: KindCounter, Unit: "{patrol}",
		Description: "Scheduled patrols skipped because the previous one still ran, by check set (default, full).",
		Attributes:  []attribute.Key{AttrCheckSet},
	}
)
