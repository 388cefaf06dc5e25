package logging_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/agent/logging"
)

func TestParse(t *testing.T) {
	tests := []struct {
		format, level string
		want          logging.Options
		err           string
	}{
		{"", "", logging.Options{Format: logging.Text, Level: slog.LevelInfo}, ""},
		{"json", "warn", logging.Options{Format: logging.JSON, Level: slog.LevelWarn}, ""},
		{"TEXT", "DEBUG", logging.Options{Format: logging.Text, Level: slog.LevelDebug}, ""},
		{"yaml", "", logging.Options{}, `log format "yaml"`},
		{"text", "loud", logging.Options{}, `log level "loud"`},
	}
	for _, tt := range tests {
		got, err := logging.Parse(tt.format, tt.level)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Parse(%q, %q): error %v, want one naming %s", tt.format, tt.level, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q, %q) = %+v, %v; want %+v", tt.format, tt.level, got, err, tt.want)
		}
	}
}

func TestNew(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, logging.Options{Format: logging.JSON, Level: slog.LevelWarn})
	log.Info("dropped")
	log.Warn("kept", "plugin", "aws")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON record: %q: %v", buf.String(), err)
	}
	if rec["msg"] != "kept" || rec["plugin"] != "aws" || rec["level"] != "WARN" {
		t.Errorf("record %v", rec)
	}

	buf.Reset()
	logging.New(&buf, logging.Options{}).Info("hello", "k", "v")
	if got := buf.String(); !strings.Contains(got, "level=INFO msg=hello k=v") {
		t.Errorf("text record %q", got)
	}
}

// A LevelVar given as Leveler changes the level of a live logger.
func TestNewLeveler(t *testing.T) {
	var buf bytes.Buffer
	level := new(slog.LevelVar)
	level.Set(slog.LevelError)
	log := logging.New(&buf, logging.Options{Format: logging.JSON, Level: slog.LevelDebug, Leveler: level})
	log.Warn("dropped")
	if buf.Len() != 0 {
		t.Errorf("warn logged at level error: %q", buf.String())
	}
	level.Set(slog.LevelWarn)
	log.Warn("kept")
	if !strings.Contains(buf.String(), `"msg":"kept"`) {
		t.Errorf("after the level changed to warn: %q", buf.String())
	}
}
