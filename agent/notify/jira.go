package notify

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// jira opens an issue when an episode fires and comments on it when the
// episode resolves (REST API v2).
type jira struct {
	project string
	cfg     JiraConfig
	client  *http.Client
}

type jiraIssue struct {
	Fields jiraFields `json:"fields"`
}

type jiraFields struct {
	Project     jiraKey  `json:"project"`
	Summary     string   `json:"summary"`
	Description string   `json:"description"`
	IssueType   jiraName `json:"issuetype"`
	Labels      []string `json:"labels,omitempty"`
}

type jiraKey struct {
	Key string `json:"key"`
}

type jiraName struct {
	Name string `json:"name"`
}

func (j *jira) Deliver(ctx context.Context, m *Message) (string, error) {
	token, err := j.cfg.Token.Load()
	if err != nil {
		return "", fmt.Errorf("jira token: %w", err)
	}
	hdr := http.Header{}
	if j.cfg.User != "" {
		hdr.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(j.cfg.User+":"+token)))
	} else {
		hdr.Set("Authorization", "Bearer "+token)
	}
	hdr.Set("Accept", "application/json")
	base := strings.TrimRight(j.cfg.URL, "/") + "/rest/api/2/issue"
	if m.Kind == Resolved {
		if m.Ref == "" {
			return "", &permanentError{errors.New("jira: no issue was opened for this episode, nothing to comment on")}
		}
		_, err := call(ctx, j.client, http.MethodPost, base+"/"+url.PathEscape(m.Ref)+"/comment", hdr,
			map[string]string{"body": jiraText(m)})
		return m.Ref, err
	}
	issueType := j.cfg.IssueType
	if issueType == "" {
		issueType = "Task"
	}
	summary := truncate(m.title(), 250) // Jira caps summary at 255 characters
	issue := jiraIssue{Fields: jiraFields{
		Project:     jiraKey{j.project},
		Summary:     summary,
		Description: jiraText(m),
		IssueType:   jiraName{issueType},
		Labels:      []string{"gopatrol", labelName(m.Rule)},
	}}
	var ans struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	data, err := callJSON(ctx, j.client, base, hdr, issue, &ans)
	if err != nil {
		return "", err
	}
	if ans.Key == "" {
		return "", fmt.Errorf("POST %s: answer has no issue key: %s", redactURL(base), snippet(data))
	}
	return ans.Key, nil
}

// jiraText is the description or comment, in Jira wiki markup.
func jiraText(m *Message) string {
	var b strings.Builder
	b.WriteString(m.title() + "\n\n")
	fmt.Fprintf(&b, "*Rule:* %s\n*Value:* %s\n", m.Rule, strconv.FormatFloat(m.Value, 'g', -1, 64))
	if m.Group != "" {
		fmt.Fprintf(&b, "*Group:* %s\n", m.Group)
	}
	if m.Node != "" {
		fmt.Fprintf(&b, "*Node:* %s\n", m.Node)
	}
	fmt.Fprintf(&b, "*Started:* %s\n", m.StartsAt.UTC().Format("2006-01-02 15:04:05Z"))
	if m.Kind == Resolved && !m.EndsAt.IsZero() {
		fmt.Fprintf(&b, "*Resolved:* %s\n", m.EndsAt.UTC().Format("2006-01-02 15:04:05Z"))
	}
	if m.TraceID != "" {
		fmt.Fprintf(&b, "*Trace ID:* %s\n", m.TraceID)
	}
	if m.Details != "" {
		b.WriteString("\n{noformat}\n" + m.Details + "\n{noformat}\n")
	}
	return b.String()
}
