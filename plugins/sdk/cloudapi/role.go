package cloudapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// RoleName is the instance role a metadata service lists (EC2's
// iam/security-credentials/, ECS's ram/security-credentials/): its first
// line, which must be usable as a path element.
func RoleName(list string) (string, error) {
	name := strings.TrimSpace(strings.SplitN(list, "\n", 2)[0])
	if name == "" || strings.ContainsAny(name, "/?#") {
		return "", fmt.Errorf("no usable role name (is a role attached to the instance?)")
	}
	return name, nil
}

// RoleCredentials parses the role's credentials document, which EC2 and
// ECS serve in the same shape with their own names for the secret and the
// session token: Code "Success", AccessKeyId, the secret, the token and
// an RFC 3339 Expiration.
func RoleCredentials(doc []byte, secretField, tokenField string) (Credentials, error) {
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		return Credentials{}, fmt.Errorf("role credentials are not JSON: %w", err)
	}
	str := func(k string) string { s, _ := m[k].(string); return s }
	if c := str("Code"); c != "Success" {
		return Credentials{}, fmt.Errorf("role credentials: Code %q, want Success", c)
	}
	exp, err := time.Parse(time.RFC3339, str("Expiration"))
	if err != nil {
		return Credentials{}, fmt.Errorf("role credentials: Expiration %q: %w", str("Expiration"), err)
	}
	return Credentials{AccessKeyID: str("AccessKeyId"), Secret: str(secretField), SessionToken: str(tokenField), Expires: exp}, nil
}
