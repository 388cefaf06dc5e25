package patrol

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// AuditFile is the audit log's name in the state directory.
const AuditFile = "audit.jsonl"

// AuditPath is where the audit log of a state directory is.
func AuditPath(stateDir string) string { return filepath.Join(stateDir, AuditFile) }

// Audit line kinds.
const (
	AuditLoad         = "load" // a rule set was loaded (first time) or reloaded
	AuditLoadFailed   = "load_failed"
	AuditRule         = "rule" // one rule added, changed or removed
	AuditNotification = "notification"
	AuditSilence      = "silence"
	AuditTicket       = "ticket"
	AuditRemediation  = "remediation" // a firing rule's action: run, skipped or rate-limited
)

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Digest   string    `json:"digest,omitempty"`
	Revision string    `json:"revision,omitempty"`
	Dir      string    `json:"dir,omitempty"`
	Rules    int       `json:"rules,omitempty"`
	// Rule lines.
	Rule     string `json:"rule,omitempty"`
	Change   string `json:"change,omitempty"` // added, changed, removed
	OldStage Stage  `json:"old_stage,omitempty"`
	NewStage Stage  `json:"new_stage,omitempty"`
	// Notification, silence and ticket lines: the target and the ID it
	// gave back.
	Target string `json:"target,omitempty"`
	ID     string `json:"id,omitempty"`
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
	// Remediation lines: the action, what it decided, and the check
	// before and after the fix with what changed and how to undo it.
	Action  string            `json:"action,omitempty"`
	Outcome string            `json:"outcome,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Before  *AuditCheck       `json:"before,omitempty"`
	After   *AuditCheck       `json:"after,omitempty"`
	Changes []string          `json:"changes,omitempty"`
	Undo    []string          `json:"undo,omitempty"`
}

// AuditCheck is a check result as the audit keeps it: status and summary,
// not the evidence.
type AuditCheck struct {
	Status  string `json:"status"`
	Summary string `json:"summary"`
}

// Audit is the append-only audit log: one JSON object a line, each line
// fsync'd before Append returns.
type Audit struct {
	Path string
	Now  func() time.Time
	mu   sync.Mutex
}

// Append writes entries, stamping those without a time.
func (a *Audit) Append(entries ...AuditEntry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(a.Path), 0o700); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	f, err := os.OpenFile(a.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	var buf []byte
	for _, e := range entries {
		if e.Time.IsZero() {
			e.Time = now().UTC()
		}
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
		buf = append(append(buf, b...), '\n')
	}
	// A full file system takes part of a write: cut the log back to its
	// last whole line, or the next line would be glued to the partial one
	// and the log unreadable after a restart (agent/soak's full tmpfs).
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if _, err := f.Write(buf); err != nil {
		return fmt.Errorf("audit log %s: %w", a.Path, errors.Join(err, f.Truncate(st.Size())))
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("audit log %s: %w", a.Path, errors.Join(err, f.Truncate(st.Size())))
	}
	return nil
}

// Record appends a notification, silence or ticket line: kind is one of
// AuditNotification, AuditSilence, AuditTicket; id is what the target gave
// back (an alert fingerprint, a silence ID, an issue key).
func (a *Audit) Record(kind, rule, target, id, detail string) error {
	switch kind {
	case AuditNotification, AuditSilence, AuditTicket:
	default:
		return fmt.Errorf("audit: %q is not a notification, silence or ticket line", kind)
	}
	return a.Append(AuditEntry{Kind: kind, Rule: rule, Target: target, ID: id, Detail: detail})
}

// ReadAudit reads every line of an audit log. A missing log has no lines.
func ReadAudit(path string) ([]AuditEntry, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	var out []AuditEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for n := 1; sc.Scan(); n++ {
		var e AuditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return out, fmt.Errorf("audit log %s line %d: %w", path, n, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

func (e *Engine) auditLoad(set *RuleSet, err error) {
	if e.audit == nil {
		return
	}
	ent := AuditEntry{Kind: AuditLoadFailed, Error: err.Error()}
	if set != nil {
		ent.Digest, ent.Revision, ent.Dir, ent.Rules = set.Digest, set.Revision, set.Dir, len(set.Rules)
	}
	if aerr := e.audit.Append(ent); aerr != nil {
		e.cfg.Logger.Error("audit log not written", "err", aerr)
	}
}

// auditChanges writes the load line and one line per rule added, changed
// or removed since the set loaded last, as the state remembers it, so the
// first load after a restart is compared with the set before the restart.
func (e *Engine) auditChanges(next *RuleSet) {
	prev := e.state.Loaded
	cur := make(map[string]LoadedRule, len(next.Rules))
	ents := []AuditEntry{{Kind: AuditLoad, Digest: next.Digest, Revision: next.Revision, Dir: next.Dir, Rules: len(next.Rules)}}
	for _, r := range next.Rules {
		lr := LoadedRule{Stage: r.Stage, Digest: r.digest()}
		cur[r.Name] = lr
		o, ok := prev[r.Name]
		switch {
		case !ok:
			ents = append(ents, AuditEntry{Kind: AuditRule, Rule: r.Name, Change: "added", NewStage: r.Stage, Revision: next.Revision})
		case o.Digest != lr.Digest:
			ents = append(ents, AuditEntry{Kind: AuditRule, Rule: r.Name, Change: "changed", OldStage: o.Stage, NewStage: r.Stage, Revision: next.Revision})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(prev)) {
		if _, ok := cur[name]; !ok {
			ents = append(ents, AuditEntry{Kind: AuditRule, Rule: name, Change: "removed", OldStage: prev[name].Stage, Revision: next.Revision})
		}
	}
	e.state.Loaded = cur
	if e.audit == nil {
		return
	}
	if err := e.audit.Append(ents...); err != nil {
		e.cfg.Logger.Error("audit log not written", "err", err)
	}
}

// digest identifies what a rule does, not where it was written.
func (r Rule) digest() string {
	r.File, r.Line = "", 0
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
