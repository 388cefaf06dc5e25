package notify

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gopatrol/gopatrol/agent/internal/secret"
)

// slack posts to an incoming webhook. The webhook URL is a secret: it is
// loaded for each message and only ever passed to the HTTP client.
type slack struct {
	channel string
	hook    secret.Source
	client  *http.Client
}

type slackPayload struct {
	Channel string `json:"channel,omitempty"`
	Text    string `json:"text"`
}

func (s *slack) Deliver(ctx context.Context, m *Message) (string, error) {
	hook, err := s.hook.Load()
	if err != nil {
		return "", fmt.Errorf("slack %s webhook: %w", s.channel, err)
	}
	_, err = call(ctx, s.client, http.MethodPost, hook, nil, slackPayload{Channel: s.channel, Text: slackText(m)})
	return "", err
}

// slackText is the message in Slack's mrkdwn.
func slackText(m *Message) string {
	icon := ":red_circle:"
	if m.Kind == Resolved {
		icon = ":large_green_circle:"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s *%s*\n", icon, escapeSlack(m.title()))
	fmt.Fprintf(&b, "value: `%s`", strconv.FormatFloat(m.Value, 'g', -1, 64))
	if m.Node != "" {
		fmt.Fprintf(&b, " · node: %s", escapeSlack(m.Node))
	}
	if m.TraceID != "" {
		fmt.Fprintf(&b, " · trace: `%s`", m.TraceID)
	}
	if m.Details != "" {
		b.WriteString("\n" + escapeSlack(m.Details))
	}
	return b.String()
}

// escapeSlack escapes the three characters Slack's formatting reserves.
func escapeSlack(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
