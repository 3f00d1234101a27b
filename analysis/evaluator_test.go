package analysis

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// The evaluator tests drive an Evaluator over a real SQLite registry and a
// fake Source, with the clock set by hand (e.now), mostly through its
// unexported steps: sweep, rebuildMarked, evaluate. Every expected number
// is worked out by hand in the comment beside it. The clinic's zone is UTC,
// so a day is a UTC calendar day.

// evSource is a fake Source: the stored values of every patient, read back
// by measurement and [from, to) as InfluxDB would.
type evSource struct {
	mu     sync.Mutex
	values map[string][]ingest.StoredValue
	reads  int
	after  func() // called after a read has taken its values; may be nil
}

func newEvSource() *evSource { return &evSource{values: map[string][]ingest.StoredValue{}} }

func (s *evSource) put(patient string, vs ...ingest.StoredValue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[patient] = append(s.values[patient], vs...)
}

func (s *evSource) Newest(ctx context.Context, patient, measurement, field string) (time.Time, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var newest time.Time
	for _, v := range s.values[patient] {
		ofField := field == "" || v.Field == field
		if measurement == "labs" && field != "" { // labs.<analyte>, as ingest.Influx reads it
			ofField = v.Field == "value" && v.Tags["analyte"] == field
		}
		if v.Measurement == measurement && ofField && v.Time.After(newest) {
			newest = v.Time
		}
	}
	return newest, !newest.IsZero(), nil
}

func (s *evSource) Values(ctx context.Context, patient string, measurements []string, from, to time.Time, fn func(ingest.StoredValue) error) error {
	s.mu.Lock()
	var out []ingest.StoredValue
	for _, v := range s.values[patient] {
		if slices.Contains(measurements, v.Measurement) && !v.Time.Before(from) && v.Time.Before(to) {
			out = append(out, v)
		}
	}
	s.reads++
	after := s.after
	s.mu.Unlock()
	if after != nil {
		after()
	}
	// InfluxDB gives no particular order: hand them over newest first.
	for i := len(out) - 1; i >= 0; i-- {
		if err := fn(out[i]); err != nil {
			return err
		}
	}
	return nil
}

func (s *evSource) readCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// evAt is 2026-11-d at hour h, UTC.
func evAt(d int, h float64) time.Time {
	return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC).Add(time.Duration(h * float64(time.Hour)))
}

func evF(v float64) *float64 { return &v }

func evDays(n int) Duration { return Duration(time.Duration(n) * 24 * time.Hour) }

// evEff1 is the effective time of every plan v1: 1 Nov 2026, 00:00.
var evEff1 = evAt(1, 0)

func evSleep(t time.Time, minutes float64) ingest.StoredValue {
	return ingest.StoredValue{Measurement: "sleep", Field: "total_min", Value: minutes, Time: t, Tags: map[string]string{"device": "ring-1"}}
}

func evWeight(t time.Time, kg float64) ingest.StoredValue {
	return ingest.StoredValue{Measurement: "vitals", Field: "weight_kg", Value: kg, Time: t, Tags: map[string]string{"device": "scale-1"}}
}

func evHR(t time.Time, bpm float64) ingest.StoredValue {
	return ingest.StoredValue{Measurement: "heart_rate", Field: "bpm", Value: bpm, Time: t, Tags: map[string]string{"device": "watch-1"}}
}

func evDose(t time.Time, medication string) ingest.StoredValue {
	return ingest.StoredValue{Measurement: "dose", Field: "amount", Value: 1, Time: t,
		Tags: map[string]string{"device": "app", "medication": medication, "route": "oral", "unit": "mg"}}
}

func evCheckIn(t time.Time, instrument string, total float64) ingest.StoredValue {
	return ingest.StoredValue{Measurement: "symptoms", Field: "total", Value: total, Time: t,
		Tags: map[string]string{"device": "app", "instrument": instrument}}
}

// evPoint is the stored point a value came from, as the writer feeds it.
func evPoint(v ingest.StoredValue) ingest.Point {
	p := ingest.Point{Measurement: v.Measurement, Time: v.Time, Fields: []ingest.Field{{Key: v.Field, Value: v.Value}}}
	for k, val := range v.Tags {
		p.Tags = append(p.Tags, ingest.Tag{Key: k, Value: val})
	}
	sort.Slice(p.Tags, func(i, j int) bool { return p.Tags[i].Key < p.Tags[j].Key })
	return p
}

// evSleepRule is a threshold rule on the 7-day mean of nightly sleep.
func evSleepRule(id string, below float64) Rule {
	return Rule{ID: id, Kind: KindThreshold, Severity: SeverityWarning, Metric: "sleep.total_min",
		PerDay: "sum", Over: evDays(7), Aggregate: "mean", Below: evF(below), MinDays: 1}
}

type evFixture struct {
	t   testing.TB
	ctx context.Context
	reg *registry.Registry
	src *evSource
	now time.Time

	mu       sync.Mutex
	notified []Transition
}

func newEvFixture(t testing.TB, patients ...string) *evFixture {
	t.Helper()
	ctx := t.Context()
	reg, err := registry.Open(ctx, testservices.RegistryDSN(t))
	if err != nil {
		t.Fatalf("registry.Open: %v", err)
	}
	t.Cleanup(func() { reg.Close() })
	f := &evFixture{t: t, ctx: ctx, reg: reg, src: newEvSource(), now: evAt(10, 12)}
	for _, id := range patients {
		f.addPatient(id)
	}
	return f
}

func (f *evFixture) addPatient(id string) {
	f.t.Helper()
	if err := f.reg.AddPatient(f.ctx, registry.Patient{ID: id}); err != nil {
		f.t.Fatalf("AddPatient(%s): %v", id, err)
	}
}

func evConfig() Config {
	c := DefaultConfig()
	c.Location = time.UTC
	return c
}

// evaluator returns an evaluator on the fixture's registry and source,
// whose clock is f.now, notifying into f.notified, with its metrics in
// the returned registry.
func (f *evFixture) evaluator(cfg Config) (*Evaluator, *prometheus.Registry) {
	prom := prometheus.NewRegistry()
	e := NewEvaluator(cfg, f.reg, f.src, slog.New(slog.DiscardHandler), prom, func(t Transition) {
		f.mu.Lock()
		f.notified = append(f.notified, t)
		f.mu.Unlock()
	})
	e.now = func() time.Time { return f.now }
	return e, prom
}

func (f *evFixture) savePlan(patient string, eff time.Time, regimen []Dose, rules ...Rule) int {
	f.t.Helper()
	p := Plan{Patient: patient, Effective: eff, Regimen: regimen, Rules: rules}
	v, err := SavePlan(f.ctx, f.reg, &p)
	if err != nil {
		f.t.Fatalf("SavePlan(%s): %v", patient, err)
	}
	return v
}

// transitions returns the patient's recorded transitions, decoded.
func (f *evFixture) transitions(patient string) []Transition {
	f.t.Helper()
	return evRecorded(f.t, f.ctx, f.reg, patient)
}

func evRecorded(t testing.TB, ctx context.Context, reg *registry.Registry, patient string) []Transition {
	t.Helper()
	rows, err := reg.Transitions(ctx, patient, 0, 1000)
	if err != nil {
		t.Fatalf("Transitions(%s): %v", patient, err)
	}
	out := make([]Transition, len(rows))
	for i, r := range rows {
		if err := json.Unmarshal(r.Body, &out[i]); err != nil {
			t.Fatalf("transition %d body %s: %v", r.ID, r.Body, err)
		}
		if r.Rule != out[i].Rule || r.Change != out[i].Change || !r.At.Equal(out[i].At) || r.Patient != patient {
			t.Errorf("transition row %d (%s %s %s %v) disagrees with its body %s", r.ID, r.Patient, r.Rule, r.Change, r.At, r.Body)
		}
	}
	return out
}

// states returns the patient's recorded rule states, decoded.
func (f *evFixture) states(patient string) map[string]ruleState {
	f.t.Helper()
	raw, err := f.reg.RuleStates(f.ctx, patient)
	if err != nil {
		f.t.Fatalf("RuleStates(%s): %v", patient, err)
	}
	out := map[string]ruleState{}
	for id, b := range raw {
		var st ruleState
		if err := json.Unmarshal(b, &st); err != nil {
			f.t.Fatalf("rule state %s %s: %v", id, b, err)
		}
		out[id] = st
	}
	return out
}

func (f *evFixture) notifications() []Transition {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.notified)
}

// store stores values as the writer does (InfluxDB first), then feeds
// each one's point to e.
func (f *evFixture) store(e *Evaluator, patient string, vs ...ingest.StoredValue) {
	f.src.put(patient, vs...)
	for _, v := range vs {
		e.Feed(patient, []ingest.Point{evPoint(v)})
	}
}

// evDrain takes in every queued message as Run does, and returns how many
// there were.
func evDrain(e *Evaluator) int {
	n := 0
	for {
		select {
		case f := <-e.queue:
			e.take(f)
			n++
		default:
			return n
		}
	}
}

func mustSweep(t *testing.T, e *Evaluator, ctx context.Context, start bool) {
	t.Helper()
	if err := e.sweep(ctx, start); err != nil {
		t.Fatalf("sweep(start=%v): %v", start, err)
	}
}

func mustPatient(t *testing.T, e *Evaluator, id string) *patient {
	t.Helper()
	p := e.patients[id]
	if p == nil {
		t.Fatalf("patient %s is not loaded", id)
	}
	return p
}

// evWant is what a transition must say; zero times are checked as zero.
type evWant struct {
	rule, kind, change, severity, metric, side string
	holds                                      bool
	value, bound                               float64
	version                                    int
	effective, from, to, at                    time.Time
	sentence                                   string
}

func evCheck(t *testing.T, got Transition, patient string, w evWant) {
	t.Helper()
	near := func(a, b float64) bool { return a-b < 1e-6 && b-a < 1e-6 }
	if got.Patient != patient || got.Rule != w.rule || got.Kind != w.kind || got.Change != w.change ||
		got.Severity != w.severity || got.Metric != w.metric || got.Side != w.side || got.Holds != w.holds {
		t.Errorf("transition = {patient %s rule %s kind %s change %s severity %s metric %s side %s holds %v}, want {%s %s %s %s %s %s %s %v}",
			got.Patient, got.Rule, got.Kind, got.Change, got.Severity, got.Metric, got.Side, got.Holds,
			patient, w.rule, w.kind, w.change, w.severity, w.metric, w.side, w.holds)
	}
	if !near(got.Value, w.value) || !near(got.Bound, w.bound) {
		t.Errorf("%s %s: value, bound = %v, %v; want %v, %v", w.rule, w.change, got.Value, got.Bound, w.value, w.bound)
	}
	if got.PlanVersion != w.version || !got.PlanEffective.Equal(w.effective) {
		t.Errorf("%s %s: plan v%d effective %v; want v%d effective %v", w.rule, w.change, got.PlanVersion, got.PlanEffective, w.version, w.effective)
	}
	if !got.WindowFrom.Equal(w.from) || !got.WindowTo.Equal(w.to) {
		t.Errorf("%s %s: window [%v, %v); want [%v, %v)", w.rule, w.change, got.WindowFrom, got.WindowTo, w.from, w.to)
	}
	if !got.At.Equal(w.at) {
		t.Errorf("%s %s: at %v; want %v", w.rule, w.change, got.At, w.at)
	}
	if got.Sentence != w.sentence {
		t.Errorf("%s %s: sentence\n  %q\nwant\n  %q", w.rule, w.change, got.Sentence, w.sentence)
	}
}

func evChanges(ts []Transition) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Rule + ":" + t.Change
	}
	return out
}

// evChangesOnly leaves out the updates of rules that hold on.
func evChangesOnly(ts []Transition) []Transition {
	return slices.DeleteFunc(slices.Clone(ts), func(t Transition) bool { return t.Change == ChangeUpdate })
}

func evWantChanges(t *testing.T, what string, ts []Transition, want ...string) {
	t.Helper()
	if got := evChanges(ts); !slices.Equal(got, want) {
		t.Fatalf("%s: transitions %q, want %q", what, got, want)
	}
}

func TestEvaluatorThresholdFiresOnceAndClears(t *testing.T) {
	f := newEvFixture(t, "p-1")
	f.savePlan("p-1", evEff1, nil, evSleepRule("sleep-low", 420))
	// Three nights of 300 min, ending on the mornings of 8, 9 and 10 Nov.
	f.src.put("p-1", evSleep(evAt(8, 7), 300), evSleep(evAt(9, 7), 300), evSleep(evAt(10, 7), 300))
	e, _ := f.evaluator(evConfig())

	f.now = evAt(10, 12)
	mustSweep(t, e, f.ctx, true)
	ts := f.transitions("p-1")
	evWantChanges(t, "first sweep", ts, "sleep-low:fired")
	// The window is the 7 days 4..10 Nov; 3 of them have a night:
	// (300+300+300)/3 = 300 min = 5 h, below 420 min = 7 h.
	evCheck(t, ts[0], "p-1", evWant{
		rule: "sleep-low", kind: KindThreshold, change: ChangeFired, severity: SeverityWarning, metric: "sleep.total_min",
		side: "below", holds: true, value: 300, bound: 420, version: 1, effective: evEff1,
		from: evAt(4, 0), to: evAt(11, 0), at: evAt(10, 12),
		sentence: "7-day mean sleep 5 h is below the plan's 7 h (plan v1, since 1 Nov)",
	})
	st := f.states("p-1")["sleep-low"]
	if !st.Holds || !st.Judged || st.Forecast || st.Version != 1 || !st.Since.Equal(evAt(10, 12)) {
		t.Errorf("recorded state = %+v, want holding, judged, v1, since 10 Nov 12:00", st)
	}

	// Nothing changed: evaluating again, by a sweep or directly, records nothing.
	f.now = evAt(10, 13)
	mustSweep(t, e, f.ctx, false)
	e.evaluate(f.ctx, mustPatient(t, e, "p-1"), evAt(10, 14), false)
	evWantChanges(t, "re-evaluation without a change", f.transitions("p-1"), "sleep-low:fired")
	// The sweep passes the rule that holds on to the alerts, unrecorded,
	// with its value and sentence now; the direct evaluation does not.
	n := f.notifications()
	evWantChanges(t, "notified", n, "sleep-low:fired", "sleep-low:update")
	if u := n[1]; !u.Holds || u.Forecast || u.Value != 300 || u.Sentence != ts[0].Sentence || !u.At.Equal(evAt(10, 13)) {
		t.Errorf("update = %+v, want holding, 300, the fired sentence, at 13:00", u)
	}

	// A long night on 11 Nov: the window 5..11 Nov has 300, 300, 300 and
	// 900: 1800/4 = 450 min = 7.5 h, not below 7 h.
	f.now = evAt(11, 12)
	f.store(e, "p-1", evSleep(evAt(11, 7), 900))
	if n := evDrain(e); n != 1 {
		t.Fatalf("drained %d messages, want 1", n)
	}
	e.evaluate(f.ctx, mustPatient(t, e, "p-1"), f.now, false)
	ts = f.transitions("p-1")
	evWantChanges(t, "after a long night", ts, "sleep-low:fired", "sleep-low:cleared")
	evCheck(t, ts[1], "p-1", evWant{
		rule: "sleep-low", kind: KindThreshold, change: ChangeCleared, severity: SeverityWarning, metric: "sleep.total_min",
		side: "below", holds: false, value: 450, bound: 420, version: 1, effective: evEff1,
		from: evAt(5, 0), to: evAt(12, 0), at: evAt(11, 12),
		sentence: "7-day mean sleep 7.5 h is back within the plan's 7 h (plan v1, since 1 Nov)",
	})
	if st := f.states("p-1")["sleep-low"]; st.Holds || !st.Judged || !st.Since.Equal(evAt(11, 12)) {
		t.Errorf("recorded state after clearing = %+v, want not holding, judged, since 11 Nov 12:00", st)
	}
	if got := evChanges(evChangesOnly(f.notifications())); !slices.Equal(got, []string{"sleep-low:fired", "sleep-low:cleared"}) {
		t.Errorf("notified %q, want the two recorded transitions", got)
	}
}

func TestEvaluatorNotifyAfterRecord(t *testing.T) {
	f := newEvFixture(t, "p-1")
	f.savePlan("p-1", evEff1, nil, evSleepRule("sleep-low", 420), evSleepRule("sleep-very-low", 360))
	f.src.put("p-1", evSleep(evAt(9, 7), 300), evSleep(evAt(10, 7), 300))

	var seen []Transition
	var problems []string
	e := NewEvaluator(evConfig(), f.reg, f.src, slog.New(slog.DiscardHandler), nil, func(tr Transition) {
		// When notify runs, the transition is in the registry already.
		recorded := evRecorded(t, f.ctx, f.reg, "p-1")
		found := false
		for _, r := range recorded {
			if r.Rule == tr.Rule && r.Change == tr.Change && r.At.Equal(tr.At) && r.Sentence == tr.Sentence {
				found = true
			}
		}
		if !found {
			problems = append(problems, "notified of "+tr.Rule+":"+tr.Change+" before it was recorded")
		}
		seen = append(seen, tr)
	})
	e.now = func() time.Time { return f.now }

	// Both rules fire at once (300 < 420 and 300 < 360): two notifications.
	mustSweep(t, e, f.ctx, true)
	for _, p := range problems {
		t.Error(p)
	}
	recorded := f.transitions("p-1")
	if len(recorded) != 2 || len(seen) != 2 {
		t.Fatalf("recorded %q and notified %q, want both rules fired once", evChanges(recorded), evChanges(seen))
	}
	got, want := evChanges(seen), evChanges(recorded)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) || !slices.Equal(want, []string{"sleep-low:fired", "sleep-very-low:fired"}) {
		t.Errorf("notified %q, recorded %q", got, want)
	}

	// When recording fails, nothing is notified and the states stay, so
	// the next evaluation reports the change again.
	p := mustPatient(t, e, "p-1")
	p.add(e.clk, Sample{Measurement: "sleep", Field: "total_min", Value: 900, Time: evAt(10, 8)})
	before := slices.Clone(p.states)
	canceled, cancel := context.WithCancel(f.ctx)
	cancel()
	e.evaluate(canceled, p, evAt(10, 13), false) // (300+1200)/2 = 750: both clear, but the write fails
	if len(seen) != 2 {
		t.Errorf("notified %q after a failed record", evChanges(seen[2:]))
	}
	if !reflect.DeepEqual(p.states, before) || !p.dirty {
		t.Errorf("after a failed record: states %+v dirty %v; want the old states %+v and dirty", p.states, p.dirty, before)
	}
	e.evaluate(f.ctx, p, evAt(10, 14), false)
	evWantChanges(t, "after the retry", f.transitions("p-1"),
		"sleep-low:fired", "sleep-very-low:fired", "sleep-low:cleared", "sleep-very-low:cleared")
	if len(seen) != 4 {
		t.Errorf("notified %q, want 4 transitions", evChanges(seen))
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// evCopyStates copies a state map.
// evSameStates compares rule states, times by instant.
func evSameStates(t *testing.T, a, b ruleStates) {
	t.Helper()
	if len(a) != len(b) {
		t.Errorf("states %+v and %+v differ", a, b)
		return
	}
	for _, n := range a {
		id, x := n.rule, n.state
		y, ok := b.get(id)
		if !ok || x.Holds != y.Holds || x.Forecast != y.Forecast || x.Judged != y.Judged || x.Version != y.Version || !x.Since.Equal(y.Since) {
			t.Errorf("state of %s: %+v and %+v differ", id, x, y)
		}
	}
}

// evRestart checks that a second evaluator, started over the same
// registry and source at now, records nothing and judges as the first.
func evRestart(t *testing.T, f *evFixture, e1 *Evaluator, patient string, now time.Time) {
	t.Helper()
	before := f.transitions(patient)
	f.now = now
	e2, _ := f.evaluator(evConfig())
	f.mu.Lock()
	f.notified = nil
	f.mu.Unlock()
	mustSweep(t, e2, f.ctx, true)
	after := f.transitions(patient)
	if len(after) != len(before) {
		t.Errorf("the restarted evaluator recorded %q", evChanges(after[len(before):]))
	}
	if n := evChangesOnly(f.notifications()); len(n) != 0 {
		t.Errorf("the restarted evaluator notified %q", evChanges(n))
	}
	p1, p2 := mustPatient(t, e1, patient), mustPatient(t, e2, patient)
	evSameStates(t, p1.states, p2.states)
	ts1, ch1, _ := judgeEvery(p1, e1.clk, now, e1.cfg.MinWearHours, false, false)
	ts2, ch2, _ := judgeEvery(p2, e2.clk, now, e2.cfg.MinWearHours, false, false)
	if len(ts1) != 0 || len(ts2) != 0 || len(ch1) != 0 || len(ch2) != 0 {
		t.Errorf("judgeEvery at %v: first %q %v, restarted %q %v; want no change from either", now, evChanges(ts1), ch1, evChanges(ts2), ch2)
	}
	plan := p1.versionAt(now)
	for i := range plan.Rules {
		r := &plan.Rules[i]
		en := newEnv(e1.clk, now, e1.cfg.MinWearHours, plan, p1.versions[0].Effective)
		v1 := judgeRule(r, plan, p1, en)
		v2 := judgeRule(r, p2.versionAt(now), p2, en)
		if !reflect.DeepEqual(v1, v2) {
			t.Errorf("rule %s: first evaluator judges %+v, restarted %+v", r.ID, v1, v2)
		}
	}
}

func TestEvaluatorRestartEquivalence(t *testing.T) {
	f := newEvFixture(t, "p-1")
	weight := Rule{ID: "weight-up", Kind: KindThreshold, Severity: SeverityInfo, Metric: "vitals.weight_kg",
		PerDay: "mean", Over: evDays(7), Aggregate: "mean", Above: evF(80), MinDays: 3, Forecast: evDays(7)}
	f.savePlan("p-1", evEff1, nil, evSleepRule("sleep-low", 420), evSleepRule("sleep-very-low", 240), weight)
	f.src.put("p-1", evSleep(evAt(8, 7), 300), evSleep(evAt(9, 7), 300), evSleep(evAt(10, 7), 300))
	for i, kg := range []float64{70, 72, 74, 76, 78, 80, 82} { // 4..10 Nov: forecast (see TestEvaluatorForecast)
		f.src.put("p-1", evWeight(evAt(4+i, 8), kg))
	}
	e1, _ := f.evaluator(evConfig())
	f.now = evAt(10, 12)
	mustSweep(t, e1, f.ctx, true)
	evWantChanges(t, "first evaluator", f.transitions("p-1"), "sleep-low:fired", "weight-up:forecast")
	if n := len(f.states("p-1")); n != 3 {
		t.Fatalf("%d rule states recorded, want 3", n)
	}

	evRestart(t, f, e1, "p-1", evAt(10, 12))
	// Later the same day, with nothing new, both still agree.
	evRestart(t, f, e1, "p-1", evAt(10, 20))
}

func TestEvaluatorRestartSilenceLongerThanADay(t *testing.T) {
	f := newEvFixture(t, "p-1")
	f.savePlan("p-1", evEff1, nil, Rule{ID: "hr-quiet", Kind: KindSilence, Severity: SeverityCritical,
		Metric: "heart_rate", For: Duration(72 * time.Hour)})
	f.src.put("p-1", evHR(evAt(8, 12), 70))
	e1, _ := f.evaluator(evConfig())
	f.now = evAt(8, 13)
	mustSweep(t, e1, f.ctx, true)
	// 10 Nov 12:00 is 48 h after the last sample: under 72 h, not silent.
	f.now = evAt(10, 12)
	mustSweep(t, e1, f.ctx, false)
	evWantChanges(t, "first evaluator", f.transitions("p-1"))
	evRestart(t, f, e1, "p-1", evAt(10, 12))
}

func TestEvaluatorRestartScoreOfOlderCheckIn(t *testing.T) {
	f := newEvFixture(t, "p-1")
	f.savePlan("p-1", evEff1, nil, Rule{ID: "mrs-high", Kind: KindScore, Severity: SeverityWarning,
		Instrument: "mrs", Score: "total", Above: evF(15)})
	f.src.put("p-1", evCheckIn(evAt(5, 9), "mrs", 20))
	e1, _ := f.evaluator(evConfig())
	f.now = evAt(5, 10)
	mustSweep(t, e1, f.ctx, true)
	// The latest check-in (5 Nov, total 20 > 15) still holds on 10 Nov.
	f.now = evAt(10, 12)
	mustSweep(t, e1, f.ctx, false)
	evWantChanges(t, "first evaluator", f.transitions("p-1"), "mrs-high:fired")
	evRestart(t, f, e1, "p-1", evAt(10, 12))
}

func TestEvaluatorPlanChange(t *testing.T) {
	f := newEvFixture(t, "p-1")
	sleepMax := Rule{ID: "sleep-max", Kind: KindThreshold, Severity: SeverityInfo, Metric: "sleep.total_min",
		PerDay: "sum", Over: evDays(7), Aggregate: "max", Below: evF(480), MinDays: 1}
	f.savePlan("p-1", evEff1, nil, evSleepRule("sleep-low", 420), sleepMax)
	f.src.put("p-1", evSleep(evAt(8, 7), 300), evSleep(evAt(9, 7), 300), evSleep(evAt(10, 7), 300))
	e, _ := f.evaluator(evConfig())
	f.now = evAt(10, 12)
	mustSweep(t, e, f.ctx, true)
	// Mean and max are both 300: below 420 and below 480.
	evWantChanges(t, "v1", f.transitions("p-1"), "sleep-low:fired", "sleep-max:fired")

	// v2 takes effect at 06:00 on 10 Nov, lowers sleep-low's bound to 390
	// and drops sleep-max.
	eff2 := evAt(10, 6)
	if v := f.savePlan("p-1", eff2, nil, evSleepRule("sleep-low", 390)); v != 2 {
		t.Fatalf("SavePlan gave v%d, want v2", v)
	}
	e.PlanChanged("p-1")
	if !e.rebuild["p-1"] {
		t.Fatal("PlanChanged did not mark the patient for rebuild")
	}
	e.rebuildMarked(f.ctx)
	if len(e.rebuild) != 0 {
		t.Errorf("still marked after rebuild: %v", e.rebuild)
	}
	p := mustPatient(t, e, "p-1")
	if len(p.versions) != 2 || p.versionAt(f.now).Version != 2 {
		t.Fatalf("after the rebuild: %d versions, in force v%d; want v2 of 2", len(p.versions), p.versionAt(f.now).Version)
	}
	f.notified = nil
	e.evaluate(f.ctx, p, f.now, false)
	ts := f.transitions("p-1")
	// sleep-low judges its whole window 4..10 Nov, v1's days too, against
	// v2's bound: 300 < 390 holds on, and is passed on with the new sentence.
	evWantChanges(t, "v2", ts, "sleep-low:fired", "sleep-max:fired", "sleep-max:cleared")
	cl := ts[2]
	if cl.Change != ChangeCleared || cl.Holds || cl.PlanVersion != 2 || !cl.PlanEffective.Equal(eff2) || !cl.At.Equal(evAt(10, 12)) ||
		cl.Sentence != "rule sleep-max is no longer in the plan (plan v2)" {
		t.Errorf("removed rule's transition = %+v", cl)
	}
	n := f.notifications()
	evWantChanges(t, "v2 notified", n, "sleep-low:update", "sleep-max:cleared")
	evCheck(t, n[0], "p-1", evWant{
		rule: "sleep-low", kind: KindThreshold, change: ChangeUpdate, severity: SeverityWarning, metric: "sleep.total_min",
		side: "below", holds: true, value: 300, bound: 390, version: 2, effective: eff2,
		from: evAt(4, 0), to: evAt(11, 0), at: evAt(10, 12),
		sentence: "7-day mean sleep 5 h is below the plan's 6.5 h (plan v2, since 10 Nov)",
	})
	states := f.states("p-1")
	if _, ok := states["sleep-max"]; ok {
		t.Errorf("the removed rule's state is still recorded: %+v", states["sleep-max"])
	}
	if st := states["sleep-low"]; !st.Holds || !st.Judged || st.Version != 2 {
		t.Errorf("sleep-low state = %+v, want holding, judged, v2", st)
	}

	// v3 from 08:00 asks sleep-low to judge only the days since the change:
	// its first full day is 11 Nov, after today, so it cannot judge.
	eff3 := evAt(10, 8)
	since := evSleepRule("sleep-low", 390)
	since.Since = SinceChange
	f.savePlan("p-1", eff3, nil, since)
	e.PlanChanged("p-1")
	e.rebuildMarked(f.ctx)
	p = mustPatient(t, e, "p-1")
	e.evaluate(f.ctx, p, f.now, false)
	ts = f.transitions("p-1")
	evWantChanges(t, "v3", ts[3:], "sleep-low:not_judged")
	nj := ts[3]
	nj.Holds = false // the holding flag of not_judged is TestEvaluatorNotJudgedKeepsHolding's
	evCheck(t, nj, "p-1", evWant{
		rule: "sleep-low", kind: KindThreshold, change: ChangeNotJudged, severity: SeverityWarning, metric: "sleep.total_min",
		version: 3, effective: eff3, from: evAt(11, 0), to: evAt(11, 0), at: evAt(10, 12),
		sentence: "sleep not judged: only 0 of the 1 day needed has enough data since plan v3 took effect (the rule judges only days since the change) (plan v3, since 10 Nov)",
	})
	// Not judged again: nothing new.
	e.evaluate(f.ctx, p, evAt(10, 18), false)
	if n := len(f.transitions("p-1")); n != 4 {
		t.Errorf("%d transitions after re-evaluating, want 4", n)
	}

	// A night on 11 Nov: v3's window 11..11 Nov judges 300 < 390, still
	// holding: judged again.
	f.now = evAt(11, 12)
	f.store(e, "p-1", evSleep(evAt(11, 7), 300))
	evDrain(e)
	e.evaluate(f.ctx, p, f.now, false)
	ts = f.transitions("p-1")
	evWantChanges(t, "v3 judged", ts[4:], "sleep-low:judged")
	evCheck(t, ts[4], "p-1", evWant{
		rule: "sleep-low", kind: KindThreshold, change: ChangeJudged, severity: SeverityWarning, metric: "sleep.total_min",
		side: "below", holds: true, value: 300, bound: 390, version: 3, effective: eff3,
		from: evAt(11, 0), to: evAt(12, 0), at: evAt(11, 12),
		sentence: "7-day mean sleep 5 h is below the plan's 6.5 h (plan v3, since 10 Nov)",
	})
	if st := f.states("p-1")["sleep-low"]; !st.Holds || !st.Judged || !st.Since.Equal(evAt(10, 12)) {
		t.Errorf("sleep-low state = %+v, want holding since it fired (10 Nov 12:00), judged", st)
	}
}

func TestEvaluatorNotJudgedKeepsHolding(t *testing.T) {
	f := newEvFixture(t, "p-1")
	f.savePlan("p-1", evEff1, nil, evSleepRule("sleep-low", 420))
	f.src.put("p-1", evSleep(evAt(10, 7), 300))
	e, _ := f.evaluator(evConfig())
	f.now = evAt(10, 12)
	mustSweep(t, e, f.ctx, true)
	since := evSleepRule("sleep-low", 420)
	since.Since = SinceChange
	f.savePlan("p-1", evAt(10, 6), nil, since)
	e.PlanChanged("p-1")
	mustSweep(t, e, f.ctx, false)
	ts := f.transitions("p-1")
	evWantChanges(t, "v2", ts, "sleep-low:fired", "sleep-low:not_judged")
	if st := f.states("p-1")["sleep-low"]; !st.Holds {
		t.Fatalf("state after not_judged = %+v, want still holding", st)
	}
	if !ts[1].Holds {
		t.Errorf("not_judged transition has holds=false, but the rule still holds (Transition.Holds: whether the rule holds after the change)")
	}
}

func TestEvaluatorSweepPicksUpOtherProcessPlans(t *testing.T) {
	f := newEvFixture(t, "p-1")
	f.savePlan("p-1", evEff1, nil, evSleepRule("sleep-low", 420))
	f.src.put("p-1", evSleep(evAt(8, 7), 300), evSleep(evAt(9, 7), 300), evSleep(evAt(10, 7), 300))
	e, _ := f.evaluator(evConfig())
	f.now = evAt(10, 12)
	mustSweep(t, e, f.ctx, true)
	evWantChanges(t, "start", f.transitions("p-1"), "sleep-low:fired")

	// A sweep with no plan change keeps the patient as held.
	old := mustPatient(t, e, "p-1")
	reads := f.src.readCount()
	mustSweep(t, e, f.ctx, false)
	if e.patients["p-1"] != old || f.src.readCount() != reads {
		t.Error("a sweep without a plan change rebuilt the patient")
	}

	// Another process (the admin command) stores v2 of p-1, and a new
	// patient p-2 with a plan, without telling this evaluator.
	f.savePlan("p-1", evAt(8, 0), nil, evSleepRule("sleep-low", 240))
	f.addPatient("p-2")
	f.savePlan("p-2", evEff1, nil, evSleepRule("sleep-low", 420))
	f.src.put("p-2", evSleep(evAt(9, 7), 360))
	f.now = evAt(10, 13)
	mustSweep(t, e, f.ctx, false)

	if e.patients["p-1"] == old {
		t.Error("p-1 was not rebuilt for its new plan version")
	}
	ts := f.transitions("p-1")
	evWantChanges(t, "p-1 after v2", ts, "sleep-low:fired", "sleep-low:cleared")
	// v2 from 8 Nov: window 4..10 Nov, mean 300 min = 5 h, not below 240 = 4 h.
	evCheck(t, ts[1], "p-1", evWant{
		rule: "sleep-low", kind: KindThreshold, change: ChangeCleared, severity: SeverityWarning, metric: "sleep.total_min",
		side: "below", value: 300, bound: 240, version: 2, effective: evAt(8, 0),
		from: evAt(4, 0), to: evAt(11, 0), at: evAt(10, 13),
		sentence: "7-day mean sleep 5 h is back within the plan's 4 h (plan v2, since 8 Nov)",
	})
	ts = f.transitions("p-2")
	evWantChanges(t, "new patient p-2", ts, "sleep-low:fired")
	// One night of 360 min = 6 h in 4..10 Nov.
	evCheck(t, ts[0], "p-2", evWant{
		rule: "sleep-low", kind: KindThreshold, change: ChangeFired, severity: SeverityWarning, metric: "sleep.total_min",
		side: "below", holds: true, value: 360, bound: 420, version: 1, effective: evEff1,
		from: evAt(4, 0), to: evAt(11, 0), at: evAt(10, 13),
		sentence: "7-day mean sleep 6 h is below the plan's 7 h (plan v1, since 1 Nov)",
	})
	if len(e.patients) != 2 {
		t.Errorf("%d patients held, want 2", len(e.patients))
	}

	// An admin deactivates p-2 in another process: the next sweep lets
	// go of her, and nothing more of hers is judged.
	if _, err := f.reg.DeactivatePatient(f.ctx, "p-2"); err != nil {
		t.Fatal(err)
	}
	f.now = evAt(10, 14)
	mustSweep(t, e, f.ctx, false)
	if _, held := e.patients["p-2"]; held || len(e.patients) != 1 {
		t.Errorf("after p-2's deactivation %d patients are held (p-2: %v), want p-1 alone", len(e.patients), held)
	}
	evWantChanges(t, "deactivated p-2", f.transitions("p-2"), "sleep-low:fired")
}

func TestEvaluatorForecastThenFired(t *testing.T) {
	f := newEvFixture(t, "p-1")
	f.savePlan("p-1", evEff1, nil, Rule{ID: "weight-up", Kind: KindThreshold, Severity: SeverityInfo, Metric: "vitals.weight_kg",
		PerDay: "mean", Over: evDays(7), Aggregate: "mean", Above: evF(80), MinDays: 3, Forecast: evDays(7)})
	// 4..10 Nov: 70, 72, ..., 82 kg: mean 76, slope exactly 2 kg a day
	// (no residual), so (80-76)/2 = 2 days to cross 80: within 7.
	for i, kg := range []float64{70, 72, 74, 76, 78, 80, 82} {
		f.src.put("p-1", evWeight(evAt(4+i, 8), kg))
	}
	e, _ := f.evaluator(evConfig())
	f.now = evAt(10, 12)
	mustSweep(t, e, f.ctx, true)
	ts := f.transitions("p-1")
	evWantChanges(t, "rising weight", ts, "weight-up:forecast")
	evCheck(t, ts[0], "p-1", evWant{
		rule: "weight-up", kind: KindThreshold, change: ChangeForecast, severity: SeverityInfo, metric: "vitals.weight_kg",
		side: "above", holds: true, value: 76, bound: 80, version: 1, effective: evEff1,
		from: evAt(4, 0), to: evAt(11, 0), at: evAt(10, 12),
		sentence: "weight: at this rate, above the plan's 80 kg in about 2 days (7-day mean weight now 76 kg) (plan v1, since 1 Nov)",
	})
	if !strings.Contains(ts[0].Sentence, "at this rate") {
		t.Errorf("forecast sentence %q does not say \"at this rate\"", ts[0].Sentence)
	}
	if st := f.states("p-1")["weight-up"]; st.Holds || !st.Forecast {
		t.Errorf("state = %+v, want forecast, not holding", st)
	}

	// 11 Nov: 84. Window 5..11: 72..84, mean 78, still 1 day away: no news.
	f.now = evAt(11, 12)
	f.store(e, "p-1", evWeight(evAt(11, 8), 84))
	evDrain(e)
	e.evaluate(f.ctx, mustPatient(t, e, "p-1"), f.now, false)
	evWantChanges(t, "still forecast", f.transitions("p-1"), "weight-up:forecast")

	// 12 and 13 Nov: 86, 88. Window 7..13: 76..88, mean 82 > 80: fired,
	// and the forecast that came true is not cleared separately.
	f.now = evAt(13, 12)
	f.store(e, "p-1", evWeight(evAt(12, 8), 86), evWeight(evAt(13, 8), 88))
	evDrain(e)
	e.evaluate(f.ctx, mustPatient(t, e, "p-1"), f.now, false)
	ts = f.transitions("p-1")
	evWantChanges(t, "crossed", ts, "weight-up:forecast", "weight-up:fired")
	evCheck(t, ts[1], "p-1", evWant{
		rule: "weight-up", kind: KindThreshold, change: ChangeFired, severity: SeverityInfo, metric: "vitals.weight_kg",
		side: "above", holds: true, value: 82, bound: 80, version: 1, effective: evEff1,
		from: evAt(7, 0), to: evAt(14, 0), at: evAt(13, 12),
		sentence: "7-day mean weight 82 kg is above the plan's 80 kg (plan v1, since 1 Nov)",
	})
	if st := f.states("p-1")["weight-up"]; !st.Holds || st.Forecast {
		t.Errorf("state = %+v, want holding, forecast off", st)
	}
}

func TestEvaluatorSilence(t *testing.T) {
	f := newEvFixture(t, "p-1")
	f.savePlan("p-1", evEff1, nil, Rule{ID: "hr-quiet", Kind: KindSilence, Severity: SeverityCritical,
		Metric: "heart_rate", For: Duration(24 * time.Hour)})
	e, _ := f.evaluator(evConfig())

	// No sample at all: the silence counts from 1 Nov 00:00.
	f.now = evAt(1, 12) // 12 h
	mustSweep(t, e, f.ctx, true)
	f.now = evAt(2, 0) // exactly 24 h: not more than `for`
	mustSweep(t, e, f.ctx, false)
	evWantChanges(t, "24 h", f.transitions("p-1"))

	f.now = evAt(2, 6) // 30 h
	mustSweep(t, e, f.ctx, false)
	ts := f.transitions("p-1")
	evWantChanges(t, "30 h", ts, "hr-quiet:fired")
	evCheck(t, ts[0], "p-1", evWant{
		rule: "hr-quiet", kind: KindSilence, change: ChangeFired, severity: SeverityCritical, metric: "heart_rate",
		side: "above", holds: true, value: 30, bound: 24, version: 1, effective: evEff1, at: evAt(2, 6),
		sentence: "no heart rate data for 30 h, longer than the plan's 24 h (plan v1, since 1 Nov)",
	})

	// A sample at 07:00; at 08:00 the silence is 1 h.
	f.store(e, "p-1", evHR(evAt(2, 7), 72))
	evDrain(e)
	f.now = evAt(2, 8)
	e.evaluate(f.ctx, mustPatient(t, e, "p-1"), f.now, false)
	ts = f.transitions("p-1")
	evWantChanges(t, "sample", ts, "hr-quiet:fired", "hr-quiet:cleared")
	evCheck(t, ts[1], "p-1", evWant{
		rule: "hr-quiet", kind: KindSilence, change: ChangeCleared, severity: SeverityCritical, metric: "heart_rate",
		side: "above", holds: false, value: 1, bound: 24, version: 1, effective: evEff1, at: evAt(2, 8),
		sentence: "heart rate data arrives again (plan v1, since 1 Nov)",
	})
}

func TestEvaluatorAdherenceDaily(t *testing.T) {
	f := newEvFixture(t, "p-1")
	eff := evAt(1, 8)
	regimen := []Dose{{Medication: "estradiol", Route: "oral", Amount: 1, Unit: "mg", Schedule: Schedule{Every: 1, Unit: "days"}}}
	f.savePlan("p-1", eff, regimen, Rule{ID: "e2-missed", Kind: KindAdherence, Severity: SeverityWarning,
		Medication: "estradiol", Over: evDays(7), Below: evF(0.8)})
	// Doses logged at 08:30 on 1..4 Nov, stored before the start.
	for d := 1; d <= 4; d++ {
		f.src.put("p-1", evDose(evAt(d, 8.5), "estradiol"))
	}
	e, _ := f.evaluator(evConfig())

	// 5 Nov 21:00: due 08:00 on 1..5 Nov (5 doses, each more than 12 h
	// ago), 4 logged: 0.8, not below 0.8.
	f.now = evAt(5, 21)
	mustSweep(t, e, f.ctx, true)
	evWantChanges(t, "4 of 5", f.transitions("p-1"))
	if st, ok := f.states("p-1")["e2-missed"]; !ok || st.Holds || !st.Judged {
		t.Errorf("state = %+v (recorded %v), want judged, not holding", st, ok)
	}

	// Doses on 6 and 7 Nov arrive through Feed; none on 5 and 8 Nov.
	f.now = evAt(8, 20)
	f.store(e, "p-1", evDose(evAt(6, 8.5), "estradiol"), evDose(evAt(7, 8.5), "estradiol"))
	evDrain(e)
	// 8 Nov 19:00: the 8 Nov dose is not late yet (its half interval ends
	// at 20:00), so it is not missed: due 08:00 on 2..7 Nov (6), logged 2,
	// 3, 4, 6, 7 Nov: 5/6 = 0.833, not below 0.8.
	e.evaluate(f.ctx, mustPatient(t, e, "p-1"), evAt(8, 19), false)
	evWantChanges(t, "5 of 6", f.transitions("p-1"))
	// 8 Nov 20:00: the window is from 1 Nov 20:00; due 08:00 on 2..8 Nov
	// (7), logged 2, 3, 4, 6, 7 Nov: 5/7 = 0.714 < 0.8.
	e.evaluate(f.ctx, mustPatient(t, e, "p-1"), f.now, false)
	ts := f.transitions("p-1")
	evWantChanges(t, "5 of 7", ts, "e2-missed:fired")
	evCheck(t, ts[0], "p-1", evWant{
		rule: "e2-missed", kind: KindAdherence, change: ChangeFired, severity: SeverityWarning,
		side: "below", holds: true, value: 5.0 / 7, bound: 0.8, version: 1, effective: eff,
		from: evAt(1, 20), to: evAt(8, 20), at: evAt(8, 20),
		sentence: "estradiol: 5 of 7 scheduled doses logged over 7 days (71%), below the plan's 80% (plan v1, since 1 Nov)",
	})

	// The 8 Nov dose, logged late at 09:00: 6/7 = 0.857.
	f.store(e, "p-1", evDose(evAt(8, 9), "estradiol"))
	evDrain(e)
	f.now = evAt(8, 21)
	e.evaluate(f.ctx, mustPatient(t, e, "p-1"), f.now, false)
	ts = f.transitions("p-1")
	evWantChanges(t, "6 of 7", ts, "e2-missed:fired", "e2-missed:cleared")
	evCheck(t, ts[1], "p-1", evWant{
		rule: "e2-missed", kind: KindAdherence, change: ChangeCleared, severity: SeverityWarning,
		side: "below", holds: false, value: 6.0 / 7, bound: 0.8, version: 1, effective: eff,
		from: evAt(1, 21), to: evAt(8, 21), at: evAt(8, 21),
		sentence: "estradiol: 6 of 7 scheduled doses logged over 7 days (86%), back within the plan's 80% (plan v1, since 1 Nov)",
	})
}

// evCounter reads a counter's value from a metrics registry.
func evCounter(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var total float64
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
			return total
		}
	}
	return 0
}

func TestEvaluatorQueueOverflow(t *testing.T) {
	f := newEvFixture(t, "p-1")
	f.savePlan("p-1", evEff1, nil, evSleepRule("sleep-low", 420))
	cfg := evConfig()
	cfg.QueueSize = 1
	e, prom := f.evaluator(cfg)
	f.now = evAt(10, 12)
	mustSweep(t, e, f.ctx, true) // no data: not judged, nothing recorded
	evWantChanges(t, "no data", f.transitions("p-1"))

	f.store(e, "p-1", evSleep(evAt(10, 7), 300)) // queued
	if len(e.rebuild) != 0 {
		t.Fatalf("marked for rebuild with room in the queue: %v", e.rebuild)
	}
	f.store(e, "p-1", evSleep(evAt(9, 7), 400)) // no room
	if n := evCounter(t, prom, "patientpulse_analysis_queue_overflows_total"); n != 1 {
		t.Errorf("overflows = %v, want 1", n)
	}
	if !e.rebuild["p-1"] {
		t.Fatal("the patient whose message overflowed is not marked for rebuild")
	}
	if len(e.queue) != 1 {
		t.Errorf("queue holds %d messages, want 1", len(e.queue))
	}

	e.rebuildMarked(f.ctx)
	if e.rebuild["p-1"] {
		t.Error("still marked after the rebuild")
	}
	p := mustPatient(t, e, "p-1")
	s := p.series[0]
	nov9, nov10 := e.clk.dayOf(evAt(9, 7)), e.clk.dayOf(evAt(10, 7))
	if st := s.at(nov9); st == nil || st.count != 1 || st.sum != 400 {
		t.Errorf("9 Nov after the rebuild = %+v, want the overflowed night (400) read from the source", st)
	}
	// The queued message comes again after the rebuild read it: once.
	if n := evDrain(e); n != 1 {
		t.Errorf("drained %d, want the 1 queued message", n)
	}
	if st := s.at(nov10); st == nil || st.count != 1 || st.sum != 300 {
		t.Errorf("10 Nov after the queued message = %+v, want one night of 300", st)
	}
	e.evaluate(f.ctx, p, f.now, false)
	ts := f.transitions("p-1")
	evWantChanges(t, "after the rebuild", ts, "sleep-low:fired")
	if ts[0].Value != 350 { // (400+300)/2
		t.Errorf("value = %v, want 350", ts[0].Value)
	}
}

func TestEvaluatorFeedRedeliveredCountsOnce(t *testing.T) {
	f := newEvFixture(t, "p-1")
	regimen := []Dose{{Medication: "estradiol", Route: "oral", Amount: 1, Unit: "mg", Schedule: Schedule{Every: 1, Unit: "days"}}}
	f.savePlan("p-1", evEff1, regimen, evSleepRule("sleep-low", 420), Rule{ID: "e2-missed", Kind: KindAdherence,
		Severity: SeverityWarning, Medication: "estradiol", Over: evDays(7), Below: evF(0.8)})
	e, _ := f.evaluator(evConfig())
	f.now = evAt(10, 12)
	mustSweep(t, e, f.ctx, true)

	night, dose := evSleep(evAt(10, 7), 300), evDose(evAt(10, 8), "estradiol")
	for range 2 { // the same message delivered twice
		f.store(e, "p-1", night, dose)
	}
	if n := evDrain(e); n != 4 {
		t.Fatalf("drained %d messages, want 4", n)
	}
	p := mustPatient(t, e, "p-1")
	if st := p.series[0].at(e.clk.dayOf(night.Time)); st == nil || st.count != 1 || st.sum != 300 {
		t.Errorf("10 Nov = %+v, want one night of 300", st)
	}
	if got := p.dosesOf("estradiol"); len(got) != 1 || got[0] != dose.Time.Unix() {
		t.Errorf("doses = %v, want the one dose at %d", got, dose.Time.Unix())
	}
	ts, _, _ := judgeEvery(p, e.clk, f.now, e.cfg.MinWearHours, false, false)
	var sleep []Transition
	for _, tr := range ts {
		if tr.Rule == "sleep-low" {
			sleep = append(sleep, tr)
		}
	}
	// A per-day sum counted twice would be 600.
	if len(sleep) != 1 || sleep[0].Change != ChangeFired || sleep[0].Value != 300 {
		t.Errorf("sleep-low transitions %+v, want fired at 300", sleep)
	}
}

// TestEvaluatorFeedResentDocumentCountsOnce resends a night of ten stage
// segments, more than series.add remembers: the patient is read back from
// the source, where the resend overwrote the same points, instead of
// counting some segments twice. A segment arriving late, after newer ones
// of its series, is read back too; newer samples are simply taken in.
func TestEvaluatorFeedResentDocumentCountsOnce(t *testing.T) {
	f := newEvFixture(t, "p-1")
	f.savePlan("p-1", evEff1, nil, evSleepRule("sleep-low", 420))
	e, prom := f.evaluator(evConfig())
	f.now = evAt(10, 12)
	mustSweep(t, e, f.ctx, true)

	var night []ingest.StoredValue
	var message []ingest.Point
	for i := range 10 {
		v := evSleep(evAt(10, 1+float64(i)/2), 30)
		night = append(night, v)
		message = append(message, evPoint(v))
	}
	f.src.put("p-1", night...)
	sumOf := func() float32 {
		st := mustPatient(t, e, "p-1").series[0].at(e.clk.dayOf(evAt(10, 1)))
		if st == nil {
			return 0
		}
		return st.sum
	}
	e.Feed("p-1", message)
	evDrain(e)
	if got := sumOf(); got != 300 || len(e.rebuild) != 0 {
		t.Fatalf("after the night: 10 Nov sums %v with %v marked, want 300 with none", got, e.rebuild)
	}

	e.Feed("p-1", message) // resent: stored again over the same points
	evDrain(e)
	if !e.rebuild["p-1"] {
		t.Fatal("a resend longer than series.add remembers is not read back")
	}
	if n := evCounter(t, prom, "patientpulse_analysis_rereads_total"); n != 1 {
		t.Errorf("rereads = %v, want 1", n)
	}
	e.rebuildMarked(f.ctx)
	if got := sumOf(); got != 300 {
		t.Errorf("after reading back, 10 Nov sums %v, want 300", got)
	}

	later := evSleep(evAt(10, 7), 20)
	f.store(e, "p-1", later)
	evDrain(e)
	if got := sumOf(); got != 320 || len(e.rebuild) != 0 {
		t.Errorf("a newer segment: 10 Nov sums %v with %v marked, want 320 with none", got, e.rebuild)
	}
	f.store(e, "p-1", evSleep(evAt(10, 0.5), 15)) // late, older than those held
	evDrain(e)
	if !e.rebuild["p-1"] {
		t.Fatal("a late segment is not read back")
	}
	e.rebuildMarked(f.ctx)
	if got := sumOf(); got != 335 {
		t.Errorf("after the late segment, 10 Nov sums %v, want 335", got)
	}
}

func TestEvaluatorRunFeedEndToEnd(t *testing.T) {
	f := newEvFixture(t, "p-1")
	f.savePlan("p-1", evEff1, nil, evSleepRule("sleep-low", 420))
	loaded := make(chan struct{})
	var once sync.Once
	f.src.after = func() { once.Do(func() { close(loaded) }) }

	cfg := evConfig()
	cfg.Interval = 100 * time.Millisecond
	cfg.Sweep = time.Hour // only the live path can evaluate after the start
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	got := make(chan Transition, 10)
	e := NewEvaluator(cfg, f.reg, f.src, slog.New(slog.DiscardHandler), nil, func(tr Transition) { got <- tr })
	base, start := evAt(10, 12), time.Now()
	e.now = func() time.Time { return base.Add(time.Since(start)) }

	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()

	select {
	case <-loaded:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not load the patient")
	}
	// Stored after the start-up read, then fed.
	f.store(e, "p-1", evSleep(evAt(10, 7), 300))
	select {
	case tr := <-got:
		if tr.Rule != "sleep-low" || tr.Change != ChangeFired || tr.Value != 300 || tr.Patient != "p-1" {
			t.Errorf("notified %+v, want sleep-low fired at 300", tr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no transition within 5s of Feed")
	}
	evWantChanges(t, "recorded", f.transitions("p-1"), "sleep-low:fired")
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
	edge := Config{Location: time.UTC, MinWearHours: 24, Interval: 100 * time.Millisecond, Sweep: 100 * time.Millisecond, QueueSize: 1}
	if err := edge.Validate(); err != nil {
		t.Errorf("config at every limit: %v", err)
	}
	const (
		wear     = "analysis-min-wear-hours must be 1 to 24"
		interval = "analysis-interval must be at least 100ms"
		sweep    = "analysis-sweep must be at least analysis-interval"
		queue    = "analysis-queue must be at least 1"
	)
	tests := []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{"no wear hours", func(c *Config) { c.MinWearHours = 0 }, []string{wear}},
		{"25 wear hours", func(c *Config) { c.MinWearHours = 25 }, []string{wear}},
		{"short interval", func(c *Config) { c.Interval = 99 * time.Millisecond; c.Sweep = time.Second }, []string{interval}},
		{"sweep under interval", func(c *Config) { c.Sweep = c.Interval - 1 }, []string{sweep}},
		{"no queue", func(c *Config) { c.QueueSize = 0 }, []string{queue}},
		{"everything", func(c *Config) {
			c.MinWearHours, c.Interval, c.Sweep, c.QueueSize = -1, 50*time.Millisecond, 10*time.Millisecond, 0
		}, []string{wear, interval, sweep, queue}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want %q", c, tt.want)
			}
			if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, tt.want) {
				t.Errorf("Validate = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestEvaluatorSilenceCountsFromOlderSample: the newest heart rate is older
// than anything a silence rule of 24 h reads back, and older than the
// plan: the silence counts from it, and grows at every sweep.
func TestEvaluatorSilenceCountsFromOlderSample(t *testing.T) {
	f := newEvFixture(t, "p-1")
	f.savePlan("p-1", evEff1, nil, Rule{ID: "watch-silent", Kind: KindSilence, Severity: SeverityWarning,
		Metric: "heart_rate", For: Duration(24 * time.Hour)})
	f.src.put("p-1", evHR(evAt(7, 12), 70))
	e, _ := f.evaluator(evConfig())
	f.now = evAt(10, 12)
	mustSweep(t, e, f.ctx, true)
	ts := f.transitions("p-1")
	evWantChanges(t, "start", ts, "watch-silent:fired")
	// 7 Nov 12:00 to 10 Nov 12:00 = 72 h (not the 228 h since the plan's 1 Nov).
	if ts[0].Value != 72 || ts[0].Sentence != "no heart rate data for 72 h, longer than the plan's 24 h (plan v1, since 1 Nov)" {
		t.Errorf("fired %v: %q, want 72 h", ts[0].Value, ts[0].Sentence)
	}
	f.notified = nil
	f.now = evAt(10, 15)
	mustSweep(t, e, f.ctx, false)
	n := f.notifications()
	evWantChanges(t, "next sweep", n, "watch-silent:update")
	if n[0].Value != 75 || n[0].Sentence != "no heart rate data for 75 h, longer than the plan's 24 h (plan v1, since 1 Nov)" {
		t.Errorf("update %v: %q, want 75 h", n[0].Value, n[0].Sentence)
	}
	_, _, vs := judgeEvery(mustPatient(t, e, "p-1"), e.clk, evAt(10, 16), e.cfg.MinWearHours, true, false)
	if len(vs) != 1 || vs[0].Value != 76 {
		t.Errorf("verdicts at 16:00 = %+v, want 76 h", vs)
	}
	// A new sample ends the silence.
	f.now = evAt(10, 17)
	f.store(e, "p-1", evHR(evAt(10, 16), 72))
	evDrain(e)
	e.evaluate(f.ctx, mustPatient(t, e, "p-1"), f.now, false)
	evWantChanges(t, "after a sample", f.transitions("p-1"), "watch-silent:fired", "watch-silent:cleared")
}

// TestEvaluatorStoppedWhileLoading: a serve stopped while the evaluator
// loads its patients ends cleanly, not with the registry's "context
// canceled".
func TestEvaluatorStoppedWhileLoading(t *testing.T) {
	f := newEvFixture(t, "p-1")
	f.savePlan("p-1", evEff1, nil, evSleepRule("sleep-low", 420))
	e, _ := f.evaluator(evConfig())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Run(ctx); err != nil {
		t.Errorf("Run stopped while loading: %v, want nil", err)
	}
}

// evLab is a stored lab result: its value, and the reported value that
// analysis must not read as the analyte.
func evLab(t time.Time, analyte string, value float64) []ingest.StoredValue {
	tags := map[string]string{"device": "lab-feed", "analyte": analyte}
	return []ingest.StoredValue{{Measurement: "labs", Field: "value", Value: value, Time: t, Tags: tags},
		{Measurement: "labs", Field: "reported_value", Value: value * 1000, Time: t, Tags: tags}}
}

// TestEvaluatorLabRules: plans read labs.<analyte>: a threshold on the
// latest result, a trend over months and a silence of weeks.
func TestEvaluatorLabRules(t *testing.T) {
	f := newEvFixture(t, "p-1")
	f.savePlan("p-1", time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC), nil,
		Rule{ID: "hct-high", Kind: KindThreshold, Severity: SeverityCritical, Metric: "labs.hematocrit",
			Over: evDays(90), Aggregate: "latest", Above: evF(54), MinDays: 1},
		Rule{ID: "t-falling", Kind: KindTrend, Severity: SeverityWarning, Metric: "labs.testosterone",
			Over: evDays(90), SlopeBelow: evF(-0.05), MinDays: 3},
		Rule{ID: "psa-overdue", Kind: KindSilence, Severity: SeverityInfo, Metric: "labs.psa", For: Duration(28 * 24 * time.Hour)})
	f.src.put("p-1", evLab(evAt(2, 9), "hematocrit", 50)...)
	f.src.put("p-1", evLab(evAt(8, 9), "hematocrit", 56)...)
	f.src.put("p-1", evLab(evAt(1, 9), "psa", 1.1)...)
	for i, nmol := range []float64{30, 24, 18} { // 1 Sep, 1 Oct, 1 Nov: falling 0.2 nmol/L a day
		f.src.put("p-1", evLab(time.Date(2026, time.Month(9+i), 1, 9, 0, 0, 0, time.UTC), "testosterone", nmol)...)
	}
	e, _ := f.evaluator(evConfig())
	f.now = evAt(10, 12)
	mustSweep(t, e, f.ctx, true)
	ts := f.transitions("p-1")
	evWantChanges(t, "first sweep", ts, "hct-high:fired", "t-falling:fired")
	if s := ts[0].Sentence; s != "latest hematocrit (of 90 days) 56 % is above the plan's 54 % (plan v1, since 1 Aug)" {
		t.Errorf("hematocrit sentence %q", s)
	}
	if ts[1].Value > -0.19 || ts[1].Value < -0.2 {
		t.Errorf("testosterone slope %v a day, want about -0.197", ts[1].Value)
	}

	// A newer, normal result clears the rule on the latest value, though
	// the 90-day maximum is still 56.
	f.now = evAt(11, 12)
	f.store(e, "p-1", evLab(evAt(11, 9), "hematocrit", 52)...)
	evDrain(e)
	e.evaluate(f.ctx, mustPatient(t, e, "p-1"), f.now, false)
	evWantChanges(t, "after a normal result", f.transitions("p-1"), "hct-high:fired", "t-falling:fired", "hct-high:cleared")

	// No PSA since 1 Nov: on 29 Nov, 28 days on, it is overdue.
	f.now = evAt(29, 12)
	mustSweep(t, e, f.ctx, false)
	ts = f.transitions("p-1")
	if last := ts[len(ts)-1]; last.Rule != "psa-overdue" || last.Change != ChangeFired {
		t.Errorf("transitions %q, want psa-overdue fired last", evChanges(ts))
	}
}
