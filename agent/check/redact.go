package check

import (
	"regexp"
	"strings"
)

// passwordURL matches the scheme, user and password of a URL that carries
// one (scheme://user:pass@), as GOPROXY, GOSUMDB or a GOENV line may.
var passwordURL = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s:,|]+:[^/@\s,|]+@`)

// HasURLPassword reports whether s holds a URL with a password in it.
func HasURLPassword(s string) bool { return passwordURL.MatchString(s) }

// RedactURLs hides the password of every URL in s (scheme://user:***@),
// keeping the user, so that a report, a log line or an exported attribute
// can name a proxy without handing its credentials to whoever reads it.
func RedactURLs(s string) string {
	return passwordURL.ReplaceAllStringFunc(s, func(m string) string {
		i := strings.LastIndexByte(m[:len(m)-1], ':')
		return m[:i+1] + "***@"
	})
}
