package patrol

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestThresholds(t *testing.T) {
	tests := []struct {
		th     string
		breach []float64
		ok     []float64
	}{
		{"gt(60)", []float64{60.5, 1e9}, []float64{60, -1}},
		{"ge(2)", []float64{2, 3}, []float64{1.99}},
		{"lt(14)", []float64{13.9, -1}, []float64{14}},
		{"le(0)", []float64{0, -3}, []float64{0.1}},
		{"eq(1)", []float64{1}, []float64{0, 2}},
		{"ne(0)", []float64{1, -1}, []float64{0}},
		{"between(10, 20)", []float64{10, 15, 20}, []float64{9.9, 20.1}},
		{"outside(10,20)", []float64{9, 21}, []float64{10, 20}},
	}
	for _, tt := range tests {
		th, err := ParseThreshold(tt.th)
		if err != nil {
			t.Fatalf("%s: %v", tt.th, err)
		}
		for _, v := range tt.breach {
			if !th.Breached(v) {
				t.Errorf("%s: %g should breach", tt.th, v)
			}
		}
		for _, v := range tt.ok {
			if th.Breached(v) {
				t.Errorf("%s: %g should not breach", tt.th, v)
			}
		}
	}
	for _, bad := range []string{"gt()", "gt(1,2)", "between(5,1)", "ewma(alpha=2)", "ewma(k=-1)", "max(3)", "60"} {
		if _, err := ParseThreshold(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestEWMAWarmupAndDrift(t *testing.T) {
	var e EWMA
	// Warm-up: a wild first samples never breach.
	for i, v := range []float64{100, 0, 100, 0} {
		if e.Observe(v, 0.3, 3, 5) {
			t.Fatalf("sample %d breached during warm-up", i)
		}
	}
	// A steady, slightly noisy series: no breach once warm.
	e = EWMA{}
	for i := range 50 {
		v := 100 + float64(i%3) // 100,101,102
		if e.Observe(v, 0.3, 3, 10) && i >= 10 {
			t.Fatalf("steady sample %d (%g) breached; baseline %+v", i, v, e)
		}
	}
	if math.Abs(e.Mean-101) > 1 {
		t.Errorf("mean = %g, want about 101", e.Mean)
	}
	// A spike leaves the band.
	spike := e
	if !spike.Observe(150, 0.3, 3, 10) {
		t.Errorf("spike to 150 did not breach; band %v", e)
	}
	// A lasting level shift breaches at first, then becomes the baseline.
	breaches := 0
	for i := range 40 {
		if e.Observe(200+float64(i%2), 0.3, 3, 10) {
			breaches++
		}
	}
	if breaches == 0 || breaches > 10 {
		t.Errorf("level shift breached %d times of 40, want a few then none", breaches)
	}
	if e.Observe(200, 0.3, 3, 10) {
		t.Errorf("after the drift 200 still breaches: %+v", e)
	}
}

// clock is the engine's time, moved by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// series is a Source (the shape of agent/patrol/query's evaluators) that
// answers the next value of a list on each query; NaN answers an error.
type series struct {
	mu     sync.Mutex
	values map[string][]float64
}

func (s *series) set(rule string, vs ...float64) {
	s.mu.Lock()
	s.values[rule] = vs
	s.mu.Unlock()
}

func (s *series) factory(r Rule) (Source, error) {
	return sourceFunc(func(context.Context) (float64, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		vs := s.values[r.Name]
		if len(vs) == 0 {
			return 0, fmt.Errorf("series %s exhausted", r.Name)
		}
		v := vs[0]
		s.values[r.Name] = vs[1:]
		if math.IsNaN(v) {
			return 0, errors.New("unknown")
		}
		return v, nil
	}), nil
}

type sourceFunc func(context.Context) (float64, error)

func (f sourceFunc) Query(ctx context.Context) (float64, error) { return f(ctx) }

type world struct {
	t      *testing.T
	dir    string
	state  string
	clk    *clock
	src    *series
	e      *Engine
	mu     sync.Mutex
	events []Event
}

func newWorld(t *testing.T, rules string, mod func(*Config)) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir(), state: t.TempDir(),
		clk: &clock{t: time.Date(2026, 6, 12, 14, 28, 0, 0, time.UTC)},
		src: &series{values: map[string][]float64{}}}
	writeRules(t, w.dir, "rules.yaml", rules)
	w.start(mod)
	return w
}

func (w *world) start(mod func(*Config)) {
	cfg := Config{StateDir: w.state, HostID: "node-1", Now: w.clk.Now,
		Sources: map[string]SourceFactory{TypeSQL: w.src.factory, TypePromQL: w.src.factory},
		Events: func(ev Event) {
			w.mu.Lock()
			w.events = append(w.events, ev)
			w.mu.Unlock()
		}}
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := e.Load(w.dir); err != nil {
		w.t.Fatal(err)
	}
	w.e = e
}

// step evaluates everything once and moves the clock a minute on.
func (w *world) step() Cycle {
	w.t.Helper()
	c, err := w.e.EvaluateAll(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	w.clk.Add(time.Minute)
	return c
}

func (w *world) kinds() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ks []string
	for _, e := range w.events {
		ks = append(ks, string(e.Kind)+":"+e.Rule+e.Group)
	}
	return strings.Join(ks, " ")
}

func TestForAndFlapHandling(t *testing.T) {
	w := newWorld(t, "- name: lag\n  type: sql\n  query: q\n  threshold: gt(60)\n  for: 2\n", nil)
	// breach, healthy (pending episode: the `for` count restarts), breach,
	// breach (fires), healthy, breach (flap: same episode), healthy ×3 (ends).
	w.src.set("lag", 61, 0, 70, 80, 1, 90, 1, 1, 1)
	var fired []bool
	var since []time.Time
	for range 9 {
		c := w.step()
		fired = append(fired, c.Results[0].Firing)
		since = append(since, c.Results[0].Since)
	}
	want := []bool{false, false, false, true, true, true, true, true, false}
	for i := range want {
		if fired[i] != want[i] {
			t.Fatalf("firing = %v, want %v", fired, want)
		}
	}
	if !since[5].Equal(since[0]) {
		t.Errorf("the flap restarted the episode: since %v then %v", since[0], since[5])
	}
	if got := w.kinds(); got != "fire:lagdefault resolve:lagdefault" {
		t.Errorf("events = %q", got)
	}
}

func TestUnknownSamplesChangeNothing(t *testing.T) {
	w := newWorld(t, "- name: lag\n  type: sql\n  query: q\n  threshold: gt(60)\n", nil)
	w.src.set("lag", 61, math.NaN(), math.NaN(), math.NaN(), 61)
	for range 5 {
		c := w.step()
		if !c.Results[0].Firing {
			t.Fatalf("an unknown sample ended the episode: %+v", c.Results[0])
		}
	}
	_, _, errs := w.e.state.Rules["lag"].Window(w.clk.Now(), time.Hour)
	if errs != 3 {
		t.Errorf("errors counted = %d, want 3", errs)
	}
}

func TestScoreFormula(t *testing.T) {
	tests := []struct {
		w, d []float64
		want float64
	}{
		{nil, nil, 100},
		{[]float64{10}, []float64{0}, 100},
		{[]float64{10}, []float64{1}, 90},
		{[]float64{10}, []float64{3}, 80},
		{[]float64{0.35, 0.25}, []float64{7, 15}, 100 - 0.35*3 - 0.25*4},
		{[]float64{50}, []float64{1023}, 0}, // floored at 0
	}
	for _, tt := range tests {
		if got := Score(tt.w, tt.d); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("Score(%v, %v) = %g, want %g", tt.w, tt.d, got, tt.want)
		}
	}
}

func TestEscalationOncePerEpisode(t *testing.T) {
	w := newWorld(t, `
- name: lag
  type: sql
  query: q
  threshold: gt(60)
  weight: 10
  labels: {service: db}
`, func(c *Config) {
		c.ResolveAfter = 1
		c.TraceID = func(context.Context) string { return "4bf92f3577b34da6a3ce929d0e0e4736" }
	})
	// Minutes breaching: 0,1,2,3 → scores 100, 90, 84.2, 80, then 76.8,
	// 74.2, 72, 70, 68.3 (<70), 66.8, 65.4 (3rd below: escalate), ...
	vals := make([]float64, 0, 40)
	for range 20 {
		vals = append(vals, 100)
	}
	vals = append(vals, 0, 0, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100)
	w.src.set("lag", vals...)
	var scores []float64
	for range len(vals) {
		c := w.step()
		scores = append(scores, c.Scores[0].Score)
	}
	if scores[0] != 100 || math.Abs(scores[1]-90) > 1e-9 || math.Abs(scores[3]-80) > 1e-9 {
		t.Errorf("scores = %v", scores)
	}
	got := w.kinds()
	if strings.Count(got, "escalate:") != 2 || strings.Count(got, "recover:") != 1 {
		t.Fatalf("events = %q, want one escalation per episode (two episodes), one recovery", got)
	}
	w.mu.Lock()
	var esc Event
	for _, e := range w.events {
		if e.Kind == EventEscalate {
			esc = e
			break
		}
	}
	w.mu.Unlock()
	if st := w.e.Status(); st.Rules != 1 || len(st.Groups) != 1 || st.Groups[0].Score >= 70 || !st.Groups[0].Escalated || len(st.Firing) != 1 || st.Firing[0].Rule != "lag" {
		t.Errorf("status = %+v", st)
	}
	if esc.Group != "service=db" || esc.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || esc.Score >= 70 || len(esc.History) < 3 || len(esc.Breaching) != 1 || esc.Breaching[0].Value != 100 {
		t.Errorf("escalation = %+v", esc)
	}
	// It escalated on the 3rd consecutive score under 70.
	below := 0
	for _, s := range scores {
		if s < 70 {
			below++
		}
		if below == 3 {
			break
		}
	}
	if below != 3 {
		t.Errorf("scores never stayed under 70: %v", scores)
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	rules := "- name: q\n  type: promql\n  query: up\n  threshold: ewma(alpha=0.5,k=3)\n  baseline: {warmup: 3}\n"
	w := newWorld(t, rules, nil)
	w.src.set("q", 10, 11, 10, 11)
	for range 4 {
		w.step()
	}
	before := *w.e.state.Series[seriesKey("q", map[string]string{})]
	w.start(nil) // a new engine on the same state directory
	w.src.set("q", 500)
	c := w.step()
	if c.Results[0].Baseline == nil || c.Results[0].Baseline.N != before.Baseline.N+1 {
		t.Fatalf("baseline after restart = %+v, before %+v", c.Results[0].Baseline, before.Baseline)
	}
	if !c.Results[0].Breach {
		t.Errorf("500 after a 10–11 baseline restored from disk did not breach")
	}
	// The atomic write leaves no temporary file behind.
	ents, _ := os.ReadDir(w.state)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != AuditFile+" "+StateFile {
		t.Errorf("state directory holds %v", names)
	}
	// A state file that does not parse is refused, not silently reset.
	os.WriteFile(filepath.Join(w.state, StateFile), []byte("{\"series\": [1,"), 0o600)
	if _, err := New(Config{StateDir: w.state}); err == nil || !strings.Contains(err.Error(), StateFile) {
		t.Errorf("a broken state file: %v", err)
	}
}

func TestCanarySelection(t *testing.T) {
	for _, pct := range []float64{5, 20, 50} {
		in := 0
		const n = 20000
		for i := range n {
			if InCanary(fmt.Sprintf("ip-10-0-%d-%d.ec2.internal", i/256, i%256), "gocache-eacces", pct) {
				in++
			}
		}
		share := float64(in) * 100 / n
		if math.Abs(share-pct) > pct*0.1+0.3 {
			t.Errorf("canary %g%%: %d of %d nodes (%.2f%%)", pct, in, n, share)
		}
	}
	// Stable: the same answer every time; and raising the share keeps nodes in.
	for i := range 1000 {
		h := fmt.Sprint("node-", i)
		a := InCanary(h, "r", 5)
		if a != InCanary(h, "r", 5) {
			t.Fatal("unstable")
		}
		if a && !InCanary(h, "r", 10) {
			t.Fatalf("%s left the canary when it grew", h)
		}
	}
	if InCanary("x", "r", 0) || !InCanary("x", "r", 100) {
		t.Error("0% and 100% are none and all")
	}
}

func TestShadowNeverNotifies(t *testing.T) {
	// node-1 with these names: find a rule name outside a 5% canary, so
	// it behaves as shadow, and one inside.
	var out, in string
	for i := 0; out == "" || in == ""; i++ {
		n := fmt.Sprint("r", i)
		if InCanary("node-1", n, 5) {
			in = n
		} else {
			out = n
		}
	}
	w := newWorld(t, fmt.Sprintf(`
- name: sh
  type: sql
  query: q
  threshold: gt(1)
  stage: shadow
- name: %s
  type: sql
  query: q
  threshold: gt(1)
  stage: canary
- name: %s
  type: sql
  query: q
  threshold: gt(1)
  stage: canary
`, out, in), nil)
	for _, n := range []string{"sh", out, in} {
		w.src.set(n, 5, 0, 0, 0, 5, 0, 0, 0)
	}
	for range 8 {
		w.step()
	}
	if got, want := w.kinds(), fmt.Sprintf("fire:%[1]sdefault resolve:%[1]sdefault fire:%[1]sdefault resolve:%[1]sdefault", in); got != want {
		t.Errorf("events = %q, want only the in-canary rule's: %q", got, want)
	}
	rep := w.e.Report(w.clk.Now())
	var sh ReportLine
	for _, l := range rep {
		if l.Rule == "sh" {
			sh = l
		}
	}
	if sh.Evaluations != 8 || sh.Firings != 2 || sh.Stage != StageShadow {
		t.Errorf("shadow report = %+v", sh)
	}
}

func TestReloadAuditAndBrokenReload(t *testing.T) {
	w := newWorld(t, "- name: a\n  type: sql\n  query: q\n  threshold: gt(1)\n- name: b\n  type: sql\n  query: q\n  threshold: gt(1)\n  stage: shadow\n", nil)
	writeRules(t, w.dir, "rules.yaml", "- name: b\n  type: sql\n  query: q\n  threshold: gt(1)\n  stage: canary\n- name: c\n  type: sql\n  query: q\n  threshold: gt(1)\n")
	if err := w.e.Load(w.dir); err != nil {
		t.Fatal(err)
	}
	good := w.e.Rules()
	writeRules(t, w.dir, "rules.yaml", "- name: b\n  type: sql\n  threshold: gt(\n")
	if err := w.e.Load(w.dir); err == nil {
		t.Fatal("a broken set loaded")
	}
	writeRules(t, w.dir, "rules.yaml", "- name: e\n  type: exec\n  target: /bin/true\n")
	if err := w.e.Load(w.dir); err == nil || !strings.Contains(err.Error(), "exec rules are refused") {
		t.Fatalf("exec without permission: %v", err)
	}
	if w.e.Rules() != good {
		t.Fatal("a failed reload replaced the rule set")
	}
	lines, err := ReadAudit(AuditPath(w.state))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range lines {
		s := l.Kind
		if l.Rule != "" {
			s += fmt.Sprintf(" %s %s %s>%s", l.Rule, l.Change, l.OldStage, l.NewStage)
		}
		if l.Kind == AuditLoad && l.Digest == "" {
			t.Errorf("load line without digest: %+v", l)
		}
		got = append(got, s)
	}
	want := []string{"load", "rule a added >active", "rule b added >shadow",
		"load", "rule b changed shadow>canary", "rule c added >active", "rule a removed active>",
		"load_failed", "load_failed"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("audit =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := w.e.Audit().Record(AuditSilence, "b", "alertmanager", "5f1c0d2e", "canary"); err != nil {
		t.Fatal(err)
	}
	if err := w.e.Audit().Record("party", "b", "", "", ""); err == nil {
		t.Error("unknown audit kind accepted")
	}
	lines, _ = ReadAudit(AuditPath(w.state))
	if l := lines[len(lines)-1]; l.Kind != AuditSilence || l.ID != "5f1c0d2e" {
		t.Errorf("last line = %+v", l)
	}
}

func TestDue(t *testing.T) {
	w := newWorld(t, `
- name: fast
  type: sql
  query: q
  threshold: gt(1)
  every: 30s
- name: nightly
  type: sql
  query: q
  threshold: gt(1)
  at: "02:00"
- name: default
  type: sql
  query: q
  threshold: gt(1)
`, nil)
	w.clk.t = time.Date(2026, 6, 12, 1, 59, 0, 0, time.UTC)
	for _, n := range []string{"fast", "nightly", "default"} {
		w.src.set(n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	}
	ran := func() string {
		c, err := w.e.Evaluate(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var ns []string
		for _, r := range c.Results {
			ns = append(ns, r.Rule)
		}
		return strings.Join(ns, ",")
	}
	steps := []struct {
		after time.Duration
		want  string
	}{
		{0, "fast,nightly,default"}, // 01:59:00, never run
		{10 * time.Second, ""},
		{20 * time.Second, "fast"},         // 01:59:30
		{30 * time.Second, "fast,nightly"}, // 02:00:00, the daily time
		{0, ""},
		{3*time.Minute + 30*time.Second, "fast"}, // 02:03:30
		{30 * time.Second, "fast,default"},       // 02:04:00, five minutes on
	}
	for i, s := range steps {
		w.clk.Add(s.after)
		if got := ran(); got != s.want {
			t.Errorf("step %d at %s: ran %q, want %q", i, w.clk.Now().Format(time.TimeOnly), got, s.want)
		}
	}
}

// Reloads while cycles run: no race (go test -race), every cycle sees one
// whole set.
func TestReloadDuringEvaluation(t *testing.T) {
	a := "- {name: a, type: sql, query: q, threshold: gt(1)}\n- {name: b, type: sql, query: q, threshold: gt(1)}\n"
	bSet := "- {name: c, type: sql, query: q, threshold: gt(1)}\n"
	w := newWorld(t, a, nil)
	vals := make([]float64, 500)
	for _, n := range []string{"a", "b", "c"} {
		w.src.set(n, vals...)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			writeRules(t, w.dir, "rules.yaml", map[bool]string{true: a, false: bSet}[i%2 == 0])
			if err := w.e.Load(w.dir); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 50 {
		c, err := w.e.EvaluateAll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range c.Results {
			names = append(names, r.Rule)
		}
		if got := strings.Join(names, ","); got != "a,b" && got != "c" {
			t.Fatalf("a cycle saw %q, a mix of two sets", got)
		}
	}
	<-done
}
