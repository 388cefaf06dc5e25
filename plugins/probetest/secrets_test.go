package probetest_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gopatrol/gopatrol/internal/loopback"
	"github.com/gopatrol/gopatrol/plugins/host"
)

// lockedBuffer is a log sink written by go-plugin's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// However a collection fails (the API down, throttled for good, the
// signature refused), no secret and no session token reaches its error,
// the plugin's log (at trace level) or the host's log, even with the
// SDKs' debug switches (DEBUG=sdk for Alibaba's, which would print the
// signed URL with its token) in the environment. Alibaba's SDK puts the
// security token in the URL's query, which Go's HTTP client quotes in
// every transport error: the probe must strip it.
func TestCollectNeverLeaksCredentials(t *testing.T) {
	secrets := []string{"secret-1", "session-1", "secret-2", "session-2", "env-secret", "wrong-secret"}
	type setup struct {
		probe string
		env   []string
	}
	awsRole := func(t *testing.T, api string) setup {
		md, _ := roleIMDS(newAWS(awsDoc), "/latest/meta-data/iam/security-credentials/", "AccessKeyId", "SecretAccessKey", "Token")
		return setup{"aws", append(awsEnv(server(t, md).URL), "AWS_ENDPOINT_URL_CLOUDWATCH="+api, "GOPATROL_AWS_CLOUDWATCH_INTERVAL=1m")}
	}
	aliRole := func(t *testing.T, api string) setup {
		md, _ := roleIMDS(newAlibaba(), "/latest/meta-data/ram/security-credentials/", "AccessKeyId", "AccessKeySecret", "SecurityToken")
		return setup{"alibaba", append(alibabaEnv(server(t, md).URL), "GOPATROL_ALIBABA_CMS_ENDPOINT="+api, "GOPATROL_ALIBABA_SLB_IDS=lb-1,lb-2")}
	}
	for _, tc := range []struct {
		name string
		make func(t *testing.T) setup
	}{
		{"aws, API down", func(t *testing.T) setup { return awsRole(t, "http://"+loopback.UnusedAddr(t)) }},
		{"aws, throttled", func(t *testing.T) setup { return awsRole(t, server(t, &cloudWatch{throttle: 100}).URL) }},
		{"aws, expired for good", func(t *testing.T) setup {
			return awsRole(t, server(t, &cloudWatch{expired: map[string]bool{"STS.KEY1": true, "STS.KEY2": true}}).URL)
		}},
		{"alibaba, API down", func(t *testing.T) setup { return aliRole(t, "http://"+loopback.UnusedAddr(t)) }},
		{"alibaba, API hangs", func(t *testing.T) setup { return aliRole(t, server(t, slowHandler(time.Minute)).URL) }},
		{"alibaba, throttled", func(t *testing.T) setup { return aliRole(t, server(t, &cms{throttle: 100}).URL) }},
		{"alibaba, expired for good", func(t *testing.T) setup {
			return aliRole(t, server(t, &cms{expired: map[string]bool{"STS.KEY1": true, "STS.KEY2": true}}).URL)
		}},
		{"alibaba, wrong secret", func(t *testing.T) setup {
			s := aliRole(t, server(t, &cms{}).URL)
			s.env = append(s.env, "ALIBABA_CLOUD_ACCESS_KEY_ID=AKIDENV", "ALIBABA_CLOUD_ACCESS_KEY_SECRET=wrong-secret", "ALIBABA_CLOUD_SECURITY_TOKEN=session-1")
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.make(t)
			var pluginLog, hostLog lockedBuffer
			h := openHost(t, []string{s.probe}, append(s.env, "DEBUG=sdk,tea", "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent"),
				callTimeout(5*time.Second), func(c *host.Config) {
					c.PluginLog, c.PluginLogLevel = &pluginLog, hclog.Trace
					c.Logger = slog.New(slog.NewTextHandler(&hostLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
				})
			_, err := h.Plugins()[0].Collect(context.Background())
			if err == nil {
				t.Fatal("Collect succeeded; the case is meant to fail")
			}
			t.Logf("Collect: %v", err)
			for _, sec := range secrets {
				for what, text := range map[string]string{"error": err.Error(), "plugin log": pluginLog.String(), "host log": hostLog.String()} {
					if strings.Contains(text, sec) {
						t.Errorf("%s holds the credential %q:\n%s", what, sec, text)
					}
				}
			}
		})
	}
}
