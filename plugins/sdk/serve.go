package sdk

import (
	"os"
	"strconv"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// EnvHostPID carries the host's pid to the plugin, so that a plugin whose
// host died before it could arm the parent-death signal still notices.
const EnvHostPID = "GOPATROL_PROBE_HOST_PID"

// EnvLogLevel sets the plugin's log level (trace, debug, info, warn, error).
const EnvLogLevel = "GOPATROL_PROBE_LOG_LEVEL"

type serveConfig struct {
	logger hclog.Logger
}

// Option changes how Serve runs.
type Option func(*serveConfig)

// WithLogger replaces the default logger (hclog JSON on stderr, which the
// host parses line by line). It must not write to stdout.
func WithLogger(l hclog.Logger) Option { return func(c *serveConfig) { c.logger = l } }

// Logger is the logger a probe should use: hclog JSON on stderr, which
// the host re-logs under the plugin's name. Stdout belongs to the
// handshake.
func Logger(name string) hclog.Logger {
	level := hclog.LevelFromString(os.Getenv(EnvLogLevel))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: os.Stderr, JSONFormat: true, Level: level})
}

// Serve runs probe as a go-plugin gRPC plugin until the host closes it.
// Call it from main and do nothing else on stdout, before or after: the
// first line on stdout is the handshake. On Linux the plugin is killed when
// its host dies.
func Serve(probe Probe, opts ...Option) {
	dieWithParent(hostPID())
	cfg := serveConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = Logger(probe.Info().Name)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         PluginSet(probe),
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          cfg.logger,
	})
}

func hostPID() int {
	pid, err := strconv.Atoi(os.Getenv(EnvHostPID))
	if err != nil || pid <= 0 {
		return os.Getppid()
	}
	return pid
}
