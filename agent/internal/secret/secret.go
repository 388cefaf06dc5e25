package secret

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Source says where a secret lives: exactly one of File and Env. Its
// String form names the location, never the value.
type Source struct {
	// File is a path whose content (trailing newlines trimmed) is the secret.
	File string `yaml:"file,omitempty" json:"file,omitempty"`
	// Env is the name of an environment variable holding the secret.
	Env string `yaml:"env,omitempty" json:"env,omitempty"`
}

// maxSize bounds what is read from a secret file: a secret is a line, and
// a path pointing at a large file by mistake must not be slurped.
const maxSize = 64 << 10

// IsZero reports whether no location is set.
func (s Source) IsZero() bool { return s.File == "" && s.Env == "" }

// String names the location, for logs and errors.
func (s Source) String() string {
	switch {
	case s.File != "" && s.Env != "":
		return fmt.Sprintf("file %s and env %s", s.File, s.Env)
	case s.File != "":
		return "file " + s.File
	case s.Env != "":
		return "env " + s.Env
	}
	return "no secret source"
}

// Validate checks that exactly one location is set, without reading it.
func (s Source) Validate() error {
	switch {
	case s.IsZero():
		return errors.New("no secret source: set file or env")
	case s.File != "" && s.Env != "":
		return fmt.Errorf("%s: set only one of file and env", s)
	}
	return nil
}

// Load reads the secret. Errors name the location and what to do, never
// the content; an empty secret is an error, since sending an empty token
// or signing with an empty key would silently do the wrong thing.
func (s Source) Load() (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	var v string
	if s.Env != "" {
		var ok bool
		v, ok = os.LookupEnv(s.Env)
		if !ok {
			return "", fmt.Errorf("secret env %s is not set: export it or use a file", s.Env)
		}
	} else {
		f, err := os.Open(s.File)
		if err != nil {
			return "", fmt.Errorf("secret: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
		if err != nil {
			return "", fmt.Errorf("secret file %s: %w", s.File, err)
		}
		if len(b) > maxSize {
			return "", fmt.Errorf("secret file %s is larger than %d bytes: point file at the secret itself", s.File, maxSize)
		}
		v = string(b)
	}
	v = strings.TrimRight(v, "\r\n")
	if v == "" {
		return "", fmt.Errorf("secret from %s is empty", s)
	}
	return v, nil
}
