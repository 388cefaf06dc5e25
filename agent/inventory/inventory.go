package inventory

import (
	"container/list"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Change kinds.
const (
	Appeared    = "appeared"
	Changed     = "changed"
	Disappeared = "disappeared"
	Evicted     = "evicted"
)

// Change is one line of the change log. It names fields, never values
// of variables: GOFLAGS or GOPROXY may carry what should stay on the node.
type Change struct {
	Time time.Time `json:"time"`
	Kind string    `json:"kind"`
	ID   string    `json:"id"`
	// Previous is the environment this one replaced in its place
	// (changed).
	Previous string `json:"previous,omitempty"`
	Place    string `json:"place"`
	// Fields are what changed: variable names, go, goroot, version.
	Fields []string `json:"fields,omitempty"`
	// Detail is the version and user, or why it disappeared.
	Detail string `json:"detail,omitempty"`
}

// Entry is one environment of the inventory.
type Entry struct {
	ID        string    `json:"id"`
	Env       Env       `json:"env"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Builds counts the go commands seen in it.
	Builds uint64 `json:"builds"`
	// PIDs are the last processes seen in it: where to enter it.
	PIDs []int `json:"pids"`
	// Patrol is its last patrol, nil before the first.
	Patrol *Result `json:"last_patrol,omitempty"`
}

// pidsKept is how many recent processes an entry remembers.
const pidsKept = 4

// Config bounds an Inventory.
type Config struct {
	// Limit is the most environments kept; the least recently seen go
	// first. 0 is DefaultLimit.
	Limit int
	// ChangeLog is the most changes kept; 0 is DefaultChangeLog.
	ChangeLog int
}

// Defaults.
const (
	DefaultLimit     = 1000
	DefaultChangeLog = 1000
)

// Inventory is the bounded set of environments seen, safe for
// concurrent use.
type Inventory struct {
	cfg     Config
	mu      sync.Mutex
	byID    map[string]*list.Element // of *Entry
	lru     *list.List               // front: most recently seen
	places  map[string]string        // Place -> last ID seen there
	changes []Change                 // oldest first, at most cfg.ChangeLog
}

// New returns an empty inventory.
func New(cfg Config) *Inventory {
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultLimit
	}
	if cfg.ChangeLog <= 0 {
		cfg.ChangeLog = DefaultChangeLog
	}
	return &Inventory{cfg: cfg, byID: map[string]*list.Element{}, lru: list.New(), places: map[string]string{}}
}

// Observe records a go command seen in env at now: pids are the
// processes to enter it by, the longest-lived first (the go command's
// parent, then the go command). It returns the environment's ID and the changes it makes: appeared (with
// changed when another environment was used in the same place before),
// and evicted when the limit pushed the least recently seen one out.
func (inv *Inventory) Observe(env Env, now time.Time, pids ...int) (string, []Change) {
	id := env.ID()
	place := env.Place()
	inv.mu.Lock()
	defer inv.mu.Unlock()
	prev, hadPlace := inv.places[place]
	inv.places[place] = id
	el, known := inv.byID[id]
	if known {
		e := el.Value.(*Entry)
		e.LastSeen = now
		e.Builds++
		e.PIDs = addPIDs(e.PIDs, pids)
		inv.lru.MoveToFront(el)
	} else {
		inv.byID[id] = inv.lru.PushFront(&Entry{ID: id, Env: env, FirstSeen: now, LastSeen: now, Builds: 1, PIDs: addPIDs(nil, pids)})
	}
	var out []Change
	detail := fmt.Sprintf("%s for uid %d", orNone(env.Version), env.UID)
	switch {
	case hadPlace && prev != id:
		// A new environment in a known place, or a return to an older one.
		c := Change{Time: now, Kind: Changed, ID: id, Previous: prev, Place: place, Detail: detail}
		if pe, ok := inv.byID[prev]; ok {
			c.Fields = diff(pe.Value.(*Entry).Env, env)
		}
		out = append(out, c)
	case !known:
		out = append(out, Change{Time: now, Kind: Appeared, ID: id, Place: place, Detail: detail})
	}
	for inv.lru.Len() > inv.cfg.Limit {
		old := inv.lru.Back().Value.(*Entry)
		inv.remove(old)
		out = append(out, Change{Time: now, Kind: Evicted, ID: old.ID, Place: old.Env.Place(),
			Detail: fmt.Sprintf("least recently seen of more than %d environments (last seen %s)", inv.cfg.Limit, old.LastSeen.UTC().Format(time.RFC3339))})
	}
	inv.log(out...)
	return id, out
}

// Sweep removes the environments not seen since before now-age and
// returns their disappearances.
func (inv *Inventory) Sweep(now time.Time, age time.Duration) []Change {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	var out []Change
	for el := inv.lru.Back(); el != nil; {
		e := el.Value.(*Entry)
		if now.Sub(e.LastSeen) <= age {
			break // the list is ordered by LastSeen
		}
		el = el.Prev()
		inv.remove(e)
		out = append(out, Change{Time: now, Kind: Disappeared, ID: e.ID, Place: e.Env.Place(),
			Detail: fmt.Sprintf("no go command seen in it for %s", age)})
	}
	inv.log(out...)
	return out
}

func (inv *Inventory) remove(e *Entry) {
	inv.lru.Remove(inv.byID[e.ID])
	delete(inv.byID, e.ID)
	if p := e.Env.Place(); inv.places[p] == e.ID {
		delete(inv.places, p)
	}
}

func (inv *Inventory) log(cs ...Change) {
	inv.changes = append(inv.changes, cs...)
	if over := len(inv.changes) - inv.cfg.ChangeLog; over > 0 {
		inv.changes = slices.Delete(inv.changes, 0, over)
	}
}

// SetPatrol records the last patrol of environment id; false when it is
// no longer in the inventory.
func (inv *Inventory) SetPatrol(id string, r Result) bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	el, ok := inv.byID[id]
	if ok {
		el.Value.(*Entry).Patrol = &r
	}
	return ok
}

// Get returns a copy of environment id.
func (inv *Inventory) Get(id string) (Entry, bool) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	el, ok := inv.byID[id]
	if !ok {
		return Entry{}, false
	}
	return copyEntry(el.Value.(*Entry)), true
}

// Len is the number of environments.
func (inv *Inventory) Len() int {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.lru.Len()
}

// Entries are copies of every environment, most recently seen first.
func (inv *Inventory) Entries() []Entry {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	out := make([]Entry, 0, inv.lru.Len())
	for el := inv.lru.Front(); el != nil; el = el.Next() {
		out = append(out, copyEntry(el.Value.(*Entry)))
	}
	return out
}

// Changes are the changes at or after since, oldest first, of the
// environments in ids (every environment when ids is empty).
func (inv *Inventory) Changes(since time.Time, ids ...string) []Change {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	var out []Change
	for _, c := range inv.changes {
		if c.Time.Before(since) || (len(ids) > 0 && !slices.Contains(ids, c.ID) && !slices.Contains(ids, c.Previous)) {
			continue
		}
		out = append(out, c)
	}
	return out
}

func copyEntry(e *Entry) Entry {
	c := *e
	c.PIDs = slices.Clone(e.PIDs)
	c.Env.Vars = maps.Clone(e.Env.Vars)
	if e.Patrol != nil {
		r := *e.Patrol
		c.Patrol = &r
	}
	return c
}

// addPIDs puts the new processes first, in their order, without
// repeating one, and keeps pidsKept.
func addPIDs(old, pids []int) []int {
	out := make([]int, 0, pidsKept)
	for _, pid := range slices.Concat(pids, old) {
		if pid > 0 && !slices.Contains(out, pid) && len(out) < pidsKept {
			out = append(out, pid)
		}
	}
	return out
}

// diff names the fields in which b differs from a.
func diff(a, b Env) []string {
	var out []string
	for _, f := range []struct {
		name string
		x, y string
	}{{"go", a.Go, b.Go}, {"goroot", a.GOROOT, b.GOROOT}, {"version", a.Version, b.Version}} {
		if f.x != f.y {
			out = append(out, f.name)
		}
	}
	for _, k := range Variables {
		va, oka := a.Vars[k]
		vb, okb := b.Vars[k]
		if va != vb || oka != okb {
			out = append(out, k)
		}
	}
	return out
}

func orNone(v string) string {
	if v == "" {
		return "unknown version"
	}
	return v
}

// Describe is a one-line description of the change for logs and tickets:
// no variable values.
func (c Change) Describe() string {
	s := fmt.Sprintf("environment %s %s (%s)", c.ID, c.Kind, c.Place)
	if c.Previous != "" {
		s += fmt.Sprintf(", replacing %s", c.Previous)
	}
	if len(c.Fields) > 0 {
		s += ", changed: " + strings.Join(c.Fields, ", ")
	}
	if c.Detail != "" {
		s += ": " + c.Detail
	}
	return s
}
