package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/gopatrol/gopatrol/agent/notify"
	"github.com/gopatrol/gopatrol/internal/atomicfile"
)

// TicketsFile holds the open escalation tickets in the state directory,
// so that a group that recovers after a restart still gets its resolving
// comment: the engine's state remembers that the group escalated, this
// file remembers which episode (and so, through the outbox's refs, which
// ticket) it opened.
const TicketsFile = "tickets.json"

// openTicket is one group's open ticket: the episode's firing message
// without its long body, and the targets it went to (notify.Event does
// not serialise them).
type openTicket struct {
	Group  string       `json:"group"`
	Event  notify.Event `json:"event"`
	Notify []string     `json:"notify"`
}

// loadTickets reads the open tickets of dir; no file is none. A file that
// does not parse is an error naming it: starting without it would leave
// those tickets open for good.
func loadTickets(dir string) (map[string]notify.Event, error) {
	open := map[string]notify.Event{}
	if dir == "" {
		return open, nil
	}
	path := filepath.Join(dir, TicketsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return open, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open tickets: %w", err)
	}
	var list []openTicket
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("open tickets %s: %w (move it away to forget them: their groups' recovery will then not comment)", path, err)
	}
	for _, t := range list {
		t.Event.Notify = t.Notify
		open[t.Group] = t.Event
	}
	return open, nil
}

// saveTickets writes open atomically to dir.
func saveTickets(dir string, open map[string]notify.Event) error {
	if dir == "" {
		return nil
	}
	list := make([]openTicket, 0, len(open))
	for _, g := range slices.Sorted(maps.Keys(open)) {
		ev := open[g]
		ev.Details = ""
		list = append(list, openTicket{Group: g, Event: ev, Notify: ev.Notify})
	}
	b, err := json.Marshal(list)
	if err != nil {
		return fmt.Errorf("open tickets: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("open tickets: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, TicketsFile), b, 0o600); err != nil {
		return fmt.Errorf("open tickets: %w", err)
	}
	return nil
}

// setTicket records (ev != nil) or forgets group's open ticket, in memory
// and on disk; a failed write is logged: the ticket then stays open after
// a restart, nothing else is lost.
func (a *agent) setTicket(r *ruleEngine, group string, ev *notify.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev != nil {
		r.open[group] = *ev
	} else {
		delete(r.open, group)
	}
	if err := saveTickets(a.plan.cfg.StateDir, r.open); err != nil {
		a.log.Error("open tickets not saved: a restart will forget them", "err", err)
	}
}
