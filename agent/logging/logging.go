package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Format is how log records are written.
type Format string

const (
	// Text is slog's key=value lines, for people.
	Text Format = "text"
	// JSON is one object per line, for collectors.
	JSON Format = "json"
)

// Options choose a logger's format and lowest level. The zero value is
// text at info.
type Options struct {
	Format Format
	Level  slog.Level
	// Leveler, when set, replaces Level: a *slog.LevelVar lets a daemon
	// change the level on reload (SIGHUP) and keep its logger.
	Leveler slog.Leveler
}

// New returns a logger writing to w as opts say.
func New(w io.Writer, opts Options) *slog.Logger {
	var level slog.Leveler = opts.Level
	if opts.Leveler != nil {
		level = opts.Leveler
	}
	ho := &slog.HandlerOptions{Level: level}
	if opts.Format == JSON {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// Parse reads a format ("text", "json"; "" is text) and a level ("debug",
// "info", "warn", "error"; "" is info), as given in flags or config, and
// names the bad value when there is one.
func Parse(format, level string) (Options, error) {
	var o Options
	switch f := Format(strings.ToLower(format)); f {
	case "", Text:
		o.Format = Text
	case JSON:
		o.Format = JSON
	default:
		return o, fmt.Errorf("log format %q: want text or json", format)
	}
	if level != "" {
		if err := o.Level.UnmarshalText([]byte(level)); err != nil {
			return o, fmt.Errorf("log level %q: want debug, info, warn or error", level)
		}
	}
	return o, nil
}
