package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gopatrol/gopatrol/internal/atomicfile"
)

// StateFile is the inventory's file in the agent's state directory.
const StateFile = "environments.json"

// StatePath is where the inventory of a state directory is.
func StatePath(stateDir string) string { return filepath.Join(stateDir, StateFile) }

// State is the state file: what `gopatrol agent status` lists and
// `gopatrol check --env` reads.
type State struct {
	Schema  string    `json:"schema"`
	Written time.Time `json:"written"`
	Limit   int       `json:"limit"`
	// Entries are most recently seen first.
	Entries []Entry `json:"environments"`
	// Changes are the last day's, oldest first.
	Changes []Change `json:"changes"`
}

// Schema names the state file's format.
const Schema = "gopatrol.environments/v1"

// Snapshot is the inventory now, with the changes since changesSince.
func (inv *Inventory) Snapshot(now, changesSince time.Time) State {
	return State{Schema: Schema, Written: now.UTC(), Limit: inv.cfg.Limit, Entries: inv.Entries(), Changes: inv.Changes(changesSince)}
}

// Save writes st to path atomically, readable by root only: it holds the
// Go variables of every user's builds.
func Save(path string, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("environments state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("environments state: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("environments state: %w", err)
	}
	return nil
}

// Restore puts a saved inventory back (at the agent's start), so that an
// environment seen before a restart is not "appeared" again and the
// day's changes still reach tickets. Entries past the limit are dropped,
// least recently seen first; entries already present are kept.
func (inv *Inventory) Restore(st State) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for _, e := range st.Entries { // most recently seen first
		if inv.lru.Len() >= inv.cfg.Limit {
			break
		}
		if _, ok := inv.byID[e.ID]; ok || e.ID != e.Env.ID() {
			continue // present, or not what its fields say: not trusted
		}
		c := copyEntry(&e)
		inv.byID[e.ID] = inv.lru.PushBack(&c)
		if p := e.Env.Place(); inv.places[p] == "" {
			inv.places[p] = e.ID
		}
	}
	inv.changes = append(slices.Clone(st.Changes), inv.changes...)
	if over := len(inv.changes) - inv.cfg.ChangeLog; over > 0 {
		inv.changes = slices.Delete(inv.changes, 0, over)
	}
}

// ErrNoState is Load's error when the agent has written no inventory.
var ErrNoState = errors.New("no environment inventory")

// Load reads the state file at path.
func Load(path string) (State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, fmt.Errorf("%w at %s: is the agent running with environments.enabled, and is this its state_dir?", ErrNoState, path)
	}
	if err != nil {
		return State{}, fmt.Errorf("environments state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, fmt.Errorf("environments state %s: %w", path, err)
	}
	if st.Schema != Schema {
		return State{}, fmt.Errorf("environments state %s: schema %q, want %q", path, st.Schema, Schema)
	}
	return st, nil
}

// Find is the entry with ID id, or a prefix of it that names one.
func (st State) Find(id string) (Entry, error) {
	var found []Entry
	for _, e := range st.Entries {
		if e.ID == id {
			return e, nil
		}
		if len(id) >= 4 && len(e.ID) > len(id) && e.ID[:len(id)] == id {
			found = append(found, e)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return Entry{}, fmt.Errorf("environment %q: not in the inventory (%d environments; `gopatrol agent status` lists them)", id, len(st.Entries))
	}
	return Entry{}, fmt.Errorf("environment %q: %d environments start so, give more of the ID", id, len(found))
}
