package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gopatrol/gopatrol/internal/atomicfile"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Outbox is the on-disk queue of messages. Layout under its directory:
//
//	pending/<target>/<enqueued-ns>-<id>.json  one file per undelivered message
//	sent/<id>                                 delivered (dedup), pruned after SentRetention
//	refs/<hash of target and key>             what the target answered for an episode (a Jira key)
//	failed/<id>.json                          permanently refused, kept for an operator
//
// Every file is written to a temporary name, fsync'd, renamed into place
// and its directory fsync'd, so a crash leaves either the whole file or
// none. Each pending message is its own file, so delivering one is one
// unlink and nothing is rewritten.
type Outbox struct {
	dir string
	mu  sync.Mutex // orders dedup checks with writes in this process
}

// SentRetention is how long the dedup marker of a delivered message is
// kept: a caller repeating an Event within it sends nothing twice.
const SentRetention = 30 * 24 * time.Hour

// Entry is one pending message and the file that holds it.
type Entry struct {
	Path string
	Msg  Message
}

// OpenOutbox opens (creating) the outbox in dir, removes temporary files a
// crash left behind, and prunes old dedup markers.
func OpenOutbox(dir string) (*Outbox, error) {
	for _, sub := range []string{"pending", "sent", "refs", "failed"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
	}
	o := &Outbox{dir: dir}
	cutoff := time.Now().Add(-SentRetention)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(d.Name(), atomicfile.TempPrefix) {
			return os.Remove(p)
		}
		if filepath.Base(filepath.Dir(p)) == "sent" {
			if info, err := d.Info(); err == nil && info.ModTime().Before(cutoff) {
				return os.Remove(p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox %s: cleaning up: %w", dir, err)
	}
	return o, nil
}

// Dir is the outbox's directory.
func (o *Outbox) Dir() string { return o.dir }

// targetDir names a target's pending directory: readable, and unique
// through a hash since "#" and ":" are folded.
func targetDir(target string) string {
	safe := strings.Map(func(r rune) rune {
		if r == '-' || r == '.' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '_'
	}, target)
	if len(safe) > 64 {
		safe = safe[:64]
	}
	return safe + "-" + hashHex(target)[:8]
}

// Put stores m unless a message with its ID is pending or was delivered;
// it reports whether m was stored. When Put returns, m is on disk.
func (o *Outbox) Put(m Message) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, err := os.Stat(filepath.Join(o.dir, "sent", m.ID)); err == nil {
		return false, nil
	}
	tdir := filepath.Join(o.dir, "pending", targetDir(m.Target))
	if dup, _ := filepath.Glob(filepath.Join(tdir, "*-"+m.ID+".json")); len(dup) > 0 {
		return false, nil
	}
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return false, fmt.Errorf("outbox: %w", err)
	}
	data, err := json.Marshal(m)
	if err != nil {
		return false, fmt.Errorf("outbox: encoding message %s: %w", m.ID, err)
	}
	name := fmt.Sprintf("%020d-%s.json", m.Enqueued.UnixNano(), m.ID)
	if err := atomicfile.WriteFile(filepath.Join(tdir, name), data, 0o600); err != nil {
		return false, err
	}
	return true, nil
}

// Targets lists the pending directories that hold messages.
func (o *Outbox) targets() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(o.dir, "pending"))
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Pending returns every pending message, oldest first per target.
func (o *Outbox) Pending() ([]Entry, error) {
	tds, err := o.targets()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, td := range tds {
		es, err := o.list(td, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, es...)
	}
	return out, nil
}

// list reads the pending messages of a target directory, oldest first;
// limit > 0 stops after that many.
func (o *Outbox) list(td string, limit int) ([]Entry, error) {
	dir := filepath.Join(o.dir, "pending", td)
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("outbox: %w", err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), atomicfile.TempPrefix) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names) // the zero-padded enqueue time orders them
	var out []Entry
	for _, n := range names {
		p := filepath.Join(dir, n)
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
		var m Message
		if err := json.Unmarshal(data, &m); err != nil {
			// A file that cannot be read back is moved aside, not retried.
			_ = os.Rename(p, filepath.Join(o.dir, "failed", n))
			continue
		}
		out = append(out, Entry{Path: p, Msg: m})
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

// head is the oldest pending message of a target directory: one file is
// read, however long the backlog.
func (o *Outbox) head(td string) (Entry, bool, error) {
	es, err := o.list(td, 1)
	if err != nil || len(es) == 0 {
		return Entry{}, false, err
	}
	return es[0], true, nil
}

func (o *Outbox) refPath(target, key string) string {
	return filepath.Join(o.dir, "refs", hashHex(target+"\x00"+key))
}

// ref is what the target answered for the firing message of an episode.
func (o *Outbox) ref(target, key string) string {
	b, err := os.ReadFile(o.refPath(target, key))
	if err != nil {
		return ""
	}
	return string(b)
}

// done records e as delivered: its dedup marker and ref are on disk before
// the pending file goes, so a crash in between re-sends nothing... except
// the one message whose marker was not yet written, which is re-sent: at
// least once, never lost.
func (o *Outbox) done(e Entry, ref string) error {
	if ref != "" && e.Msg.Kind == Firing {
		if err := atomicfile.WriteFile(o.refPath(e.Msg.Target, e.Msg.Key), []byte(ref), 0o600); err != nil {
			return err
		}
	}
	if e.Msg.Kind == Resolved {
		_ = os.Remove(o.refPath(e.Msg.Target, e.Msg.Key))
	}
	if err := atomicfile.WriteFile(filepath.Join(o.dir, "sent", e.Msg.ID), nil, 0o600); err != nil {
		return err
	}
	return removeSynced(e.Path)
}

// fail moves e to failed/, where it stays for an operator to read.
func (o *Outbox) fail(e Entry) error {
	if err := os.Rename(e.Path, filepath.Join(o.dir, "failed", e.Msg.ID+".json")); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return atomicfile.SyncDir(filepath.Join(o.dir, "failed"))
}

func removeSynced(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("outbox: %w", err)
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}
