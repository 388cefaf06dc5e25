package agent

import (
	"slices"
	"testing"
	"time"
)

// A reload names the keys that only the next start applies, and only
// those: the rest of the new config is in force at once.
func TestRestartKeys(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		{"nothing", func(*Config) {}, nil},
		{"schedule and level apply now", func(c *Config) { c.Checks.Every = time.Hour; c.Log.Level = "debug" }, nil},
		{"listen", func(c *Config) { c.Listen = "127.0.0.1:1" }, []string{"listen"}},
		{"state_dir", func(c *Config) { c.StateDir = "/elsewhere" }, []string{"state_dir"}},
		{"sensors", func(c *Config) { c.Sensors.GoNames = []string{"go", "gotip"} }, []string{"sensors"}},
		{"two at once", func(c *Config) { c.HostRoot = "/host"; c.Plugins.Dir = "/plugins" }, []string{"host_root", "plugins"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := Default()
			tt.change(&next)
			if got := restartKeys(Default(), next); !slices.Equal(got, tt.want) {
				t.Errorf("restartKeys = %q, want %q", got, tt.want)
			}
		})
	}
}
