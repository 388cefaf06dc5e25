package proxy

import (
	"fmt"
	"net"
	"net/url"
	pathpkg "path"
	"path/filepath"
	"strings"

	"github.com/gopatrol/gopatrol/agent/check"
)

// entry is one place the go command fetches modules or checksums from, as
// the go command reads GOPROXY and GOSUMDB.
type entry struct {
	Var   string // "GOPROXY" or "GOSUMDB"
	Index int    // position in GOPROXY
	Raw   string // as written in the variable
	// Special is "off", "direct" or "noproxy" for GOPROXY's keywords and
	// "off" for GOSUMDB=off; URL is nil then.
	Special string
	URL     *url.URL
	// FallBackOnError is true when the entry is followed by "|": the go
	// command then tries the next entry after any error, not only after a
	// 404 or 410.
	FallBackOnError bool
	Err             error // the entry is not a usable URL
}

// Label names the entry in evidence and summaries, a password in its URL
// hidden.
func (e entry) Label() string {
	return e.Var + " " + e.Target()
}

// Key names the entry in evidence: GOPROXY[0], GOPROXY[1], GOSUMDB.
func (e entry) Key() string {
	if e.Var == "GOPROXY" {
		return fmt.Sprintf("GOPROXY[%d]", e.Index)
	}
	return e.Var
}

// Target is the entry's URL, or its keyword, a password in it hidden:
// reports name proxies, they never carry their credentials.
func (e entry) Target() string {
	if e.URL != nil {
		return check.RedactURLs(e.URL.String())
	}
	return check.RedactURLs(e.Raw)
}

// proxyEntries splits GOPROXY the way cmd/go's proxyList does: "," and "|"
// separate entries; "off" and "direct" end the list; a word with a dot,
// colon or slash but no scheme gets "https://".
func proxyEntries(goproxy string) []entry {
	var list []entry
	for goproxy != "" {
		var raw string
		fallBack := false
		if i := strings.IndexAny(goproxy, ",|"); i >= 0 {
			raw, fallBack, goproxy = goproxy[:i], goproxy[i] == '|', goproxy[i+1:]
		} else {
			raw, goproxy = goproxy, ""
		}
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		e := entry{Var: "GOPROXY", Index: len(list), Raw: raw, FallBackOnError: fallBack}
		if raw == "off" || raw == "direct" {
			e.Special = raw
			list = append(list, e)
			break // the go command ignores anything after them
		}
		u := raw
		if strings.ContainsAny(u, ".:/") && !strings.Contains(u, ":/") && !filepath.IsAbs(u) && !pathpkg.IsAbs(u) {
			u = "https://" + u
		}
		parsed, err := url.Parse(u)
		switch {
		case err != nil:
			e.Err = fmt.Errorf("invalid GOPROXY entry %q: %w", raw, err)
		case parsed.Scheme != "https" && parsed.Scheme != "http" && parsed.Scheme != "file":
			e.Err = fmt.Errorf("invalid GOPROXY entry %q: unsupported scheme %q (want https, http or file)", raw, parsed.Scheme)
		case parsed.Scheme != "file" && parsed.Host == "":
			e.Err = fmt.Errorf("invalid GOPROXY entry %q: no host", raw)
		default:
			e.URL = parsed
		}
		list = append(list, e)
	}
	return list
}

// sumdbEntry reads GOSUMDB the way cmd/go's dbDial does: "off", or
// "<key> [<url>]" where the key is a verifier key "name+hash+key" or a bare
// name, and the database is reached at <url>, else https://<name>.
func sumdbEntry(gosumdb string) (entry, bool) {
	gosumdb = strings.TrimSpace(gosumdb)
	e := entry{Var: "GOSUMDB", Raw: gosumdb}
	if gosumdb == "" {
		return e, false
	}
	if gosumdb == "off" {
		e.Special = "off"
		return e, true
	}
	f := strings.Fields(gosumdb)
	if len(f) > 2 {
		e.Err = fmt.Errorf("invalid GOSUMDB %q: too many fields (want \"<name>[+<key>] [<url>]\")", gosumdb)
		return e, true
	}
	name, _, _ := strings.Cut(f[0], "+")
	raw := "https://" + name
	if len(f) == 2 {
		raw = f[1]
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		e.Err = fmt.Errorf("invalid GOSUMDB URL %q", raw)
		return e, true
	}
	e.URL = u
	return e, true
}

// hostPort is the address to dial for u, with the scheme's default port.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "http" {
		return net.JoinHostPort(u.Hostname(), "80")
	}
	return net.JoinHostPort(u.Hostname(), "443")
}
