package patrol

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gopatrol/gopatrol/internal/atomicfile"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// StateFile is the name of the engine's state in the state directory.
const StateFile = "patrol-state.json"

// ReportWindow is the span `gopatrol rules report` counts over: the
// source's 48 hours of pre-release running.
const ReportWindow = 48 * time.Hour

// State is what the engine keeps across restarts.
type State struct {
	Version int                     `json:"version"`
	Series  map[string]*SeriesState `json:"series"`
	Groups  map[string]*GroupState  `json:"groups"`
	Rules   map[string]*RuleStats   `json:"rules"`
	// Loaded is the rule set loaded last, for the audit of the next load.
	Loaded map[string]LoadedRule `json:"loaded"`
	// Actions are the times of the actions run in the last hour, for the
	// node's rate limit.
	Actions []time.Time `json:"actions,omitempty"`
}

// LoadedRule is what the audit compares across loads.
type LoadedRule struct {
	Stage  Stage  `json:"stage"`
	Digest string `json:"digest"`
}

// SeriesState is the baseline and episode of one rule and label set.
type SeriesState struct {
	Rule     string            `json:"rule"`
	Labels   map[string]string `json:"labels,omitempty"`
	Baseline EWMA              `json:"baseline"`
	Value    float64           `json:"value"`
	// Since is the start of the current breach episode (zero: none).
	Since    time.Time `json:"since,omitzero"`
	Breaches int       `json:"breaches"` // consecutive breaching evaluations
	Healthy  int       `json:"healthy"`  // consecutive healthy ones inside an episode
	Firing   bool      `json:"firing"`
	// Acted is set once the episode's actions were decided, so they run
	// at most once per episode, across restarts too.
	Acted bool `json:"acted,omitempty"`
}

// GroupState is the escalation state of a group of labels.
type GroupState struct {
	// Labels are an environment's group labels (the rule's and
	// LabelEnvironment), nil for the rules' own groups.
	Labels    map[string]string `json:"labels,omitempty"`
	History   []ScorePoint      `json:"history"`
	Below     int               `json:"below"`
	Escalated bool              `json:"escalated"`
}

// RuleStats counts a rule's evaluations and firings per hour over the
// report window.
type RuleStats struct {
	LastRun time.Time   `json:"last_run,omitzero"`
	Hours   []HourCount `json:"hours"`
	Repairs RepairCount `json:"repairs,omitzero"`
}

// HourCount is one hour of a rule's counts.
type HourCount struct {
	Hour        int64 `json:"hour"` // Unix hour
	Evaluations int   `json:"evaluations"`
	Firings     int   `json:"firings"`
	Errors      int   `json:"errors"`
}

func newState() *State {
	return &State{Version: 1, Series: map[string]*SeriesState{}, Groups: map[string]*GroupState{}, Rules: map[string]*RuleStats{}, Loaded: map[string]LoadedRule{}}
}

// LoadState reads the state in dir; a missing file is a fresh state. An
// unreadable one is an error: silently starting over would reset every
// baseline.
func LoadState(dir string) (*State, error) {
	st := newState()
	if dir == "" {
		return st, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("patrol state: %w", err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("patrol state %s: %w (move it away to start the baselines over)", filepath.Join(dir, StateFile), err)
	}
	if st.Series == nil {
		st.Series = map[string]*SeriesState{}
	}
	if st.Groups == nil {
		st.Groups = map[string]*GroupState{}
	}
	if st.Rules == nil {
		st.Rules = map[string]*RuleStats{}
	}
	if st.Loaded == nil {
		st.Loaded = map[string]LoadedRule{}
	}
	return st, nil
}

// Save writes the state atomically: a temporary file, fsync'd, renamed
// over the old one, and the directory fsync'd.
func (s *State) Save(dir string) error {
	if dir == "" {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("patrol state: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("patrol state: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, StateFile), b, 0o600)
}

// entry returns m[key], made by mk and stored on first use.
func entry[V any](m map[string]*V, key string, mk func() *V) *V {
	v, ok := m[key]
	if !ok {
		v = mk()
		m[key] = v
	}
	return v
}

func (s *State) series(key, rule string, labels map[string]string) *SeriesState {
	return entry(s.Series, key, func() *SeriesState { return &SeriesState{Rule: rule, Labels: labels} })
}

func (s *State) group(g string) *GroupState {
	return entry(s.Groups, g, func() *GroupState { return new(GroupState) })
}

func (s *State) ruleStats(name string) *RuleStats {
	return entry(s.Rules, name, func() *RuleStats { return new(RuleStats) })
}

func (s *State) lastRun(name string) time.Time {
	if rs, ok := s.Rules[name]; ok {
		return rs.LastRun
	}
	return time.Time{}
}

func (rs *RuleStats) add(now time.Time, evals, firings, errs int) {
	h := now.Unix() / 3600
	if n := len(rs.Hours); n == 0 || rs.Hours[n-1].Hour != h {
		rs.Hours = append(rs.Hours, HourCount{Hour: h})
	}
	last := &rs.Hours[len(rs.Hours)-1]
	last.Evaluations += evals
	last.Firings += firings
	last.Errors += errs
	// Keep one hour more than the window, for the partial hour at its start.
	keep := int(ReportWindow/time.Hour) + 1
	if len(rs.Hours) > keep {
		rs.Hours = append(rs.Hours[:0], rs.Hours[len(rs.Hours)-keep:]...)
	}
}

// Window sums the counts of the hours that overlap [now−window, now].
func (rs *RuleStats) Window(now time.Time, window time.Duration) (evals, firings, errs int) {
	from := now.Add(-window).Unix() / 3600
	for _, h := range rs.Hours {
		if h.Hour >= from && h.Hour <= now.Unix()/3600 {
			evals += h.Evaluations
			firings += h.Firings
			errs += h.Errors
		}
	}
	return evals, firings, errs
}
