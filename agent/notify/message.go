package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"time"
)

// Kind says whether an Event opens or closes an episode.
type Kind string

// The two kinds of Event: one notification per episode and one on resolve.
const (
	Firing   Kind = "firing"
	Resolved Kind = "resolved"
)

// Event is what the caller (the patrol engine's escalation, the agent)
// wants said about one breach episode of one rule and label group.
type Event struct {
	// Key identifies the episode; the firing and the resolving Event of
	// one episode carry the same Key. Empty means derived from Rule,
	// Group, Labels and StartsAt (see EpisodeKey).
	Key   string `json:"key"`
	Kind  Kind   `json:"kind"`
	Rule  string `json:"rule"`
	Group string `json:"group,omitempty"`
	// Stage is the rule's gray-release stage (canary, active).
	Stage string `json:"stage,omitempty"`
	Node  string `json:"node,omitempty"`
	// Labels are the rule's labels (service, region, az, version, ...).
	Labels map[string]string `json:"labels,omitempty"`
	// Cloud holds the node's cloud.* resource attributes, keys as in
	// OTel semconv ("cloud.provider", "cloud.region", ...).
	Cloud map[string]string `json:"cloud,omitempty"`
	// Annotations describe what fired without being part of its
	// identity (a Go environment's user and container); Alertmanager
	// gets them as annotations.
	Annotations map[string]string `json:"annotations,omitempty"`
	Value       float64           `json:"value"`
	Summary     string            `json:"summary"`
	// Details is the long form: for a ticket, the score history, the
	// breaching rules with values and baselines, the diagnosis.
	Details  string    `json:"details,omitempty"`
	TraceID  string    `json:"trace_id,omitempty"`
	StartsAt time.Time `json:"starts_at"`
	// EndsAt is when a Resolved episode ended (zero: when sent).
	EndsAt time.Time `json:"ends_at,omitzero"`
	// Notify lists the rule's notify entries: "alertmanager",
	// "slack:#chan", "webhook:NAME", "jira:PROJECT", or an alias such as
	// "#db-ops" or "sms:oncall".
	Notify []string `json:"-"`
}

// EpisodeKey is the default Key of an episode: the rule, the group, the
// labels in order and the start time.
func EpisodeKey(rule, group string, labels map[string]string, startsAt time.Time) string {
	var b strings.Builder
	b.WriteString(rule)
	b.WriteByte(0)
	b.WriteString(group)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b.WriteByte(0)
		b.WriteString(k + "=" + labels[k])
	}
	b.WriteByte(0)
	b.WriteString(startsAt.UTC().Format(time.RFC3339Nano))
	return hashHex(b.String())
}

// Message is one Event bound for one target: what the outbox stores.
type Message struct {
	Event
	// ID is derived from Target, Key and Kind: the dedup key.
	ID string `json:"id"`
	// Target is the canonical target ("slack:#db-ops", "webhook:sms").
	Target string `json:"target"`
	// Recipient is the notify entry as the rule wrote it ("sms:oncall").
	Recipient string    `json:"recipient"`
	Enqueued  time.Time `json:"enqueued"`
	// Ref is what the target answered for the firing message of the
	// episode (a Jira issue key), given to the resolving message.
	Ref string `json:"ref,omitempty"`
}

func messageID(target, key string, kind Kind) string {
	return hashHex(target + "\x00" + key + "\x00" + string(kind))
}

func hashHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:16])
}

// title is the one-line form every target shows.
func (m *Message) title() string {
	var b strings.Builder
	b.WriteString("[" + strings.ToUpper(string(m.Kind)) + "] " + m.Rule)
	if m.Group != "" {
		b.WriteString(" (" + m.Group + ")")
	}
	if m.Stage != "" && m.Stage != "active" {
		b.WriteString(" [" + m.Stage + "]")
	}
	if m.Summary != "" {
		b.WriteString(": " + m.Summary)
	}
	return b.String()
}
