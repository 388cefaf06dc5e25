package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// deliverer is one target: it sends one message, returning what the
// target answered that a later message of the episode needs (a Jira key).
type deliverer interface {
	Deliver(ctx context.Context, m *Message) (ref string, err error)
}

// Notifier turns Events into outbox messages and delivers them.
type Notifier struct {
	cfg    Config
	retry  RetryConfig
	box    *Outbox
	log    *slog.Logger
	client *http.Client
	now    func() time.Time
	wake   chan struct{}

	onDelivery func(Delivery)

	mu      sync.Mutex
	workers map[string]bool // target directories with a running worker
	wg      sync.WaitGroup
}

// New validates cfg (every secret must be readable), opens the outbox in
// dir and returns a Notifier; Run delivers.
func New(cfg Config, dir string, log *slog.Logger) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	box, err := OpenOutbox(dir)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{
		cfg:   cfg,
		retry: cfg.Retry.withDefaults(),
		box:   box,
		log:   log,
		// No client-wide timeout: each call gets RetryConfig.CallTimeout
		// through its context.
		client:  &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		now:     time.Now,
		wake:    make(chan struct{}, 1),
		workers: map[string]bool{},
	}, nil
}

// Delivery reports the fate of one message, for the audit log: Ref is
// what the target answered (a Jira issue key), Err is set when the
// message was refused for good and moved to failed/.
type Delivery struct {
	Message Message
	Ref     string
	Err     error
}

// OnDelivery sets f to be called (from the delivery workers, one call at a
// time per target) after each message is delivered or refused for good.
// Call it before Run.
func (n *Notifier) OnDelivery(f func(Delivery)) { n.onDelivery = f }

func (n *Notifier) report(d Delivery) {
	if n.onDelivery != nil {
		n.onDelivery(d)
	}
}

// Outbox is the Notifier's outbox.
func (n *Notifier) Outbox() *Outbox { return n.box }

// Notify stores one message per notify entry of ev in the outbox and wakes
// the delivery loop. It returns how many were new: an Event repeated (same
// key and kind) stores nothing. Entries that name no configured target
// are reported together in the error; the others are still stored.
func (n *Notifier) Notify(ev Event) (int, error) {
	if ev.Kind != Firing && ev.Kind != Resolved {
		return 0, fmt.Errorf("notify: event kind %q: use %q or %q", ev.Kind, Firing, Resolved)
	}
	if ev.Rule == "" {
		return 0, errors.New("notify: event without a rule name")
	}
	if ev.Stage == "shadow" {
		// Shadow rules are evaluated and recorded, never announced: an
		// Event for one is a bug in the caller, said loudly.
		return 0, fmt.Errorf("notify: rule %s is in stage shadow, which never notifies", ev.Rule)
	}
	if ev.Key == "" {
		ev.Key = EpisodeKey(ev.Rule, ev.Group, ev.Labels, ev.StartsAt)
	}
	if ev.Kind == Resolved && ev.EndsAt.IsZero() {
		ev.EndsAt = n.now()
	}
	var errs []error
	added := 0
	seen := map[string]bool{}
	for _, entry := range ev.Notify {
		target, err := n.cfg.Resolve(entry)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %s: notify %w", ev.Rule, err))
			continue
		}
		if seen[target] {
			continue // "#db-ops" and "slack:#db-ops" in one rule
		}
		seen[target] = true
		m := Message{Event: ev, ID: messageID(target, ev.Key, ev.Kind), Target: target, Recipient: entry, Enqueued: n.now()}
		ok, err := n.box.Put(m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			added++
			n.log.Debug("notification queued", "target", target, "id", m.ID, "rule", ev.Rule, "kind", ev.Kind)
		}
	}
	if added > 0 {
		select {
		case n.wake <- struct{}{}:
		default:
		}
	}
	return added, errors.Join(errs...)
}

// Silence creates an Alertmanager silence and returns its ID, for a
// canary rule's alerts.
func (n *Notifier) Silence(ctx context.Context, s Silence) (string, error) {
	if n.cfg.Alertmanager == nil {
		return "", errors.New("silence: no alertmanager configured (notify.alertmanager.url)")
	}
	ctx, cancel := context.WithTimeout(ctx, n.retry.CallTimeout)
	defer cancel()
	id, err := n.alertmanager().silence(ctx, s)
	if err != nil {
		return "", fmt.Errorf("silence: %w", err)
	}
	n.log.Info("alertmanager silence created", "silence_id", id, "matchers", s.Matchers, "ends_at", s.EndsAt)
	return id, nil
}

func (n *Notifier) alertmanager() *alertmanager {
	return &alertmanager{cfg: *n.cfg.Alertmanager, client: n.client, now: n.now}
}

// target builds the deliverer for a canonical target name.
func (n *Notifier) target(name string) (deliverer, error) {
	if _, err := n.cfg.canonical(name); err != nil {
		return nil, err
	}
	scheme, arg, _ := strings.Cut(name, ":")
	switch scheme {
	case "alertmanager":
		return n.alertmanager(), nil
	case "slack":
		hook, ok := n.cfg.Slack.Channels[arg]
		if !ok {
			hook = n.cfg.Slack.Webhook
		}
		return &slack{channel: arg, hook: hook, client: n.client}, nil
	case "webhook":
		return &webhook{name: arg, cfg: n.cfg.Webhooks[arg], client: n.client, now: n.now}, nil
	default: // jira, the last scheme canonical accepts
		return &jira{project: arg, cfg: *n.cfg.Jira, client: n.client}, nil
	}
}

// Run delivers the outbox until ctx ends: one worker per target with
// pending messages, so a target that hangs or fails holds up only its own
// messages. It rescans every RetryConfig.Poll and whenever Notify queues.
func (n *Notifier) Run(ctx context.Context) error {
	t := time.NewTicker(n.retry.Poll)
	defer t.Stop()
	defer n.wg.Wait()
	for {
		if err := n.scan(ctx); err != nil {
			n.log.Error("outbox scan failed", "dir", n.box.Dir(), "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-n.wake:
		}
	}
}

func (n *Notifier) scan(ctx context.Context) error {
	tds, err := n.box.targets()
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, td := range tds {
		if n.workers[td] {
			continue
		}
		n.workers[td] = true
		n.wg.Add(1)
		go n.work(ctx, td)
	}
	return nil
}

// next is the head of td, or false after unregistering the worker: both
// under mu, so a scan never sees a worker that has already decided to
// stop.
func (n *Notifier) next(td string) (Entry, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok, err := n.box.head(td)
	if err != nil {
		n.log.Error("outbox read failed", "dir", td, "err", err)
	}
	if !ok {
		delete(n.workers, td)
	}
	return e, ok
}

// work delivers one target's messages in order, retrying the head with
// backoff until it is delivered or refused for good.
func (n *Notifier) work(ctx context.Context, td string) {
	defer n.wg.Done()
	attempt := 0
	for ctx.Err() == nil {
		e, ok := n.next(td)
		if !ok {
			return
		}
		err := n.deliver(ctx, &e)
		switch {
		case err == nil:
			attempt = 0
			continue
		case IsPermanent(err):
			attempt = 0
			n.log.Error("notification refused, moved to failed/", "target", e.Msg.Target, "id", e.Msg.ID, "rule", e.Msg.Rule, "kind", e.Msg.Kind, "err", err)
			if ferr := n.box.fail(e); ferr != nil {
				n.log.Error("outbox", "err", ferr)
				n.sleep(ctx, n.retry.Max)
				continue
			}
			n.report(Delivery{Message: e.Msg, Err: err})
			continue
		}
		if ctx.Err() != nil {
			return
		}
		d := n.backoff(attempt)
		attempt++
		n.log.Warn("notification failed, will retry", "target", e.Msg.Target, "id", e.Msg.ID, "rule", e.Msg.Rule, "attempt", attempt, "retry_in", d.Round(time.Millisecond), "err", err)
		n.sleep(ctx, d)
	}
}

func (n *Notifier) deliver(ctx context.Context, e *Entry) error {
	m := &e.Msg
	t, err := n.target(m.Target)
	if err != nil {
		// The config changed under a queued message: keep it, retry.
		return err
	}
	if m.Kind == Resolved && m.Ref == "" {
		m.Ref = n.box.ref(m.Target, m.Key)
	}
	cctx, cancel := context.WithTimeout(ctx, n.retry.CallTimeout)
	ref, err := t.Deliver(cctx, m)
	cancel()
	if err != nil {
		return err
	}
	if err := n.box.done(*e, ref); err != nil {
		n.log.Error("notification delivered but not recorded: it may be sent again", "target", m.Target, "id", m.ID, "err", err)
		return nil
	}
	n.log.Info("notification delivered", "target", m.Target, "id", m.ID, "rule", m.Rule, "kind", m.Kind, "ref", ref)
	n.report(Delivery{Message: *m, Ref: ref})
	return nil
}

// backoff is Initial·2^attempt capped at Max, with "equal jitter": half
// fixed, half random, so that many agents whose target came back do not
// retry in lockstep.
func (n *Notifier) backoff(attempt int) time.Duration {
	d := n.retry.Max
	if attempt < 30 {
		if e := n.retry.Initial << attempt; e > 0 && e < d {
			d = e
		}
	}
	return d/2 + rand.N(d/2+1)
}

func (n *Notifier) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
