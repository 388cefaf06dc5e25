package notify

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// alertmanager posts alerts to the v2 API.
type alertmanager struct {
	cfg    AlertmanagerConfig
	client *http.Client
	now    func() time.Time
}

// amAlert is postableAlert of the Alertmanager v2 OpenAPI spec.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// AlertLabels are the labels an alert for m carries: alertname and rule
// (the rule's name), group, stage, node, the rule's labels and the node's
// cloud.* attributes, with names made valid for Alertmanager
// ("cloud.region" becomes "cloud_region").
func AlertLabels(m *Message) map[string]string {
	l := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(m.Labels)) {
		l[labelName(k)] = m.Labels[k]
	}
	for _, k := range slices.Sorted(maps.Keys(m.Cloud)) {
		l[labelName(k)] = m.Cloud[k]
	}
	set := func(k, v string) {
		if v != "" {
			l[k] = v
		}
	}
	set("alertname", m.Rule)
	set("rule", m.Rule)
	set("group", m.Group)
	set("stage", m.Stage)
	set("node", m.Node)
	return l
}

// labelName maps a name onto [a-zA-Z_][a-zA-Z0-9_]*, which every
// Alertmanager version accepts.
func labelName(k string) string {
	b := []byte(k)
	for i, c := range b {
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}

func (a *alertmanager) Deliver(ctx context.Context, m *Message) (string, error) {
	al := amAlert{
		Labels: AlertLabels(m),
		Annotations: map[string]string{
			"summary": m.Summary,
			"value":   strconv.FormatFloat(m.Value, 'g', -1, 64),
		},
		StartsAt: m.StartsAt,
	}
	for k, v := range m.Annotations {
		al.Annotations[labelName(k)] = v
	}
	if m.Details != "" {
		al.Annotations["description"] = m.Details
	}
	if m.TraceID != "" {
		al.Annotations["trace_id"] = m.TraceID
	}
	switch m.Kind {
	case Resolved:
		al.EndsAt = m.EndsAt
		if al.EndsAt.IsZero() {
			al.EndsAt = a.now()
		}
	default:
		ttl := a.cfg.FiringTTL
		if ttl <= 0 {
			ttl = 24 * time.Hour
		}
		al.EndsAt = a.now().Add(ttl)
	}
	_, err := call(ctx, a.client, http.MethodPost, a.url("/api/v2/alerts"), nil, []amAlert{al})
	return "", err
}

func (a *alertmanager) url(path string) string {
	return strings.TrimRight(a.cfg.URL, "/") + path
}

// Silence is an Alertmanager silence: every matcher is an equality.
type Silence struct {
	Matchers  map[string]string
	StartsAt  time.Time
	EndsAt    time.Time
	CreatedBy string
	Comment   string
}

type amMatcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual bool   `json:"isEqual"`
}

type amSilence struct {
	Matchers  []amMatcher `json:"matchers"`
	StartsAt  time.Time   `json:"startsAt"`
	EndsAt    time.Time   `json:"endsAt"`
	CreatedBy string      `json:"createdBy"`
	Comment   string      `json:"comment"`
}

// silence creates s and returns the silence ID Alertmanager assigned.
func (a *alertmanager) silence(ctx context.Context, s Silence) (string, error) {
	if len(s.Matchers) == 0 {
		return "", errors.New("silence without matchers would silence everything: give at least one")
	}
	if !s.EndsAt.After(s.StartsAt) {
		return "", fmt.Errorf("silence ends (%s) before it starts (%s)", s.EndsAt.Format(time.RFC3339), s.StartsAt.Format(time.RFC3339))
	}
	body := amSilence{StartsAt: s.StartsAt, EndsAt: s.EndsAt, CreatedBy: s.CreatedBy, Comment: s.Comment}
	if body.CreatedBy == "" {
		body.CreatedBy = "gopatrol"
	}
	for _, k := range slices.Sorted(maps.Keys(s.Matchers)) {
		body.Matchers = append(body.Matchers, amMatcher{Name: labelName(k), Value: s.Matchers[k], IsEqual: true})
	}
	u := a.url("/api/v2/silences")
	var ans struct {
		SilenceID string `json:"silenceID"`
	}
	data, err := callJSON(ctx, a.client, u, nil, body, &ans)
	if err != nil {
		return "", err
	}
	if ans.SilenceID == "" {
		return "", fmt.Errorf("POST %s: answer has no silenceID: %s", redactURL(u), snippet(data))
	}
	return ans.SilenceID, nil
}
