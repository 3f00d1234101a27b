package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// The manager is driven synchronously here: a controllable clock (m.now),
// transitions handed to m.handle, ticks by m.Tick, never Run.

// mtT0 is when every case starts: a Monday, 10:00 UTC.
var mtT0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// mtSchedule covers the whole week in every tier.
const mtSchedule = `timezone: UTC
tiers:
  - name: primary
    after: 0m
    shifts:
      - {staff: [otto, nina], days: [all], from: "00:00", to: "24:00"}
  - name: secondary
    after: 15m
    shifts:
      - {staff: [dr-lee], days: [all], from: "00:00", to: "24:00"}
  - name: consultant
    after: 45m
    shifts:
      - {staff: [dr-khan], days: [all], from: "00:00", to: "24:00"}
`

// mtSparseSchedule has nobody in the secondary tier on weekdays.
const mtSparseSchedule = `timezone: UTC
tiers:
  - name: primary
    after: 0m
    shifts:
      - {staff: [otto], days: [all], from: "00:00", to: "24:00"}
  - name: secondary
    after: 15m
    shifts:
      - {staff: [dr-lee], days: [weekend], from: "00:00", to: "24:00"}
`

func mtParse(t *testing.T, src string) *OnCallSchedule {
	t.Helper()
	s, err := ParseOnCall([]byte(src))
	if err != nil {
		t.Fatalf("ParseOnCall: %v", err)
	}
	return s
}

// mtClock is the manager's clock, set by the test.
type mtClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *mtClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *mtClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// mtRecorder reads the events the manager wrote to the outbox, and
// checks that each was written with its alert's event (same change, time,
// actor and note). It is woken after each change, as the hub is.
type mtRecorder struct {
	t     *testing.T
	reg   *registry.Registry
	woken atomic.Int64
}

func (r *mtRecorder) wake() { r.woken.Add(1) }

func (r *mtRecorder) all() []Event {
	r.t.Helper()
	ctx := context.Background()
	rows, err := r.reg.OutboxEvents(ctx, 0, 1<<20)
	if err != nil {
		r.t.Fatal(err)
	}
	var evs []Event
	for _, row := range rows {
		var ev Event
		if err := json.Unmarshal(row.Body, &ev); err != nil {
			r.t.Fatal(err)
		}
		ev.Alert.ID = row.AlertID
		stored, err := r.reg.AlertEvents(ctx, row.AlertID)
		if err != nil || !slices.ContainsFunc(stored, func(s registry.AlertEvent) bool {
			return s.Kind == ev.Change && s.At.Equal(ev.At) && s.Actor == ev.Actor && s.Note == ev.Note && row.Kind == ev.Change
		}) {
			r.t.Errorf("outbox event %s of alert %d at %v has no alert event: stored %+v (err %v)", ev.Change, row.AlertID, ev.At, stored, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// mtRig is a manager over a real registry, with its clock and notifier.
type mtRig struct {
	t   *testing.T
	ctx context.Context
	cfg Config
	reg *registry.Registry
	clk *mtClock
	rec *mtRecorder
	log *testservices.LogBuffer
	m   *Manager
}

const (
	mtP1 = "p1"
	mtP2 = "p2"
)

func mtNewRig(t *testing.T, cfg Config, patients ...string) *mtRig {
	t.Helper()
	ctx := context.Background()
	reg, err := registry.Open(ctx, testservices.RegistryDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	if len(patients) == 0 {
		patients = []string{mtP1, mtP2}
	}
	for _, p := range patients {
		if err := reg.AddPatient(ctx, registry.Patient{ID: p}); err != nil {
			t.Fatal(err)
		}
	}
	r := &mtRig{t: t, ctx: ctx, cfg: cfg, reg: reg, clk: &mtClock{t: mtT0}, log: &testservices.LogBuffer{}}
	r.rec = &mtRecorder{t: t, reg: reg}
	r.m = r.newManager()
	t.Cleanup(func() {
		if s := r.log.String(); strings.Contains(s, "level=ERROR") {
			t.Errorf("the manager logged errors:\n%s", s)
		}
	})
	return r
}

// newManager is a manager over the rig's registry, clock and notifier,
// as a restarted process would have (not resumed).
func (r *mtRig) newManager() *Manager {
	m := NewManager(r.cfg, r.reg, slog.New(slog.NewTextHandler(r.log, nil)), nil)
	m.now = r.clk.now
	m.Deliver(nil, r.rec.wake)
	return m
}

// record stores t as the evaluator does, before the manager hears of it.
func (r *mtRig) record(t analysis.Transition) {
	r.t.Helper()
	body, err := json.Marshal(t)
	if err != nil {
		r.t.Fatal(err)
	}
	err = r.reg.RecordTransitions(r.ctx, t.Patient, []registry.Transition{{Patient: t.Patient, Rule: t.Rule, Change: t.Change, At: t.At, Body: body}}, nil)
	if err != nil {
		r.t.Fatal(err)
	}
}

// rows is every alert, oldest first.
func (r *mtRig) rows() []registry.AlertRow {
	r.t.Helper()
	rows, err := r.reg.Alerts(r.ctx, registry.AlertFilter{})
	if err != nil {
		r.t.Fatal(err)
	}
	slices.Reverse(rows)
	return rows
}

// alertID is the id of the newest alert of the patient's key.
func (r *mtRig) alertID(patient, key string) int64 {
	r.t.Helper()
	for _, row := range slices.Backward(r.rows()) {
		if row.Patient == patient && row.Key == key {
			return row.ID
		}
	}
	r.t.Fatalf("no alert %s of %s", key, patient)
	return 0
}

func (r *mtRig) alert(id int64) Alert {
	r.t.Helper()
	a, _, err := r.m.Get(r.ctx, id)
	if err != nil {
		r.t.Fatal(err)
	}
	return a
}

// mtSummary describes a stored alert in one line.
func mtSummary(row registry.AlertRow) string {
	a, err := alertOf(row)
	if err != nil {
		return fmt.Sprintf("alert %d: %v", row.ID, err)
	}
	s := fmt.Sprintf("%s %s %s %s", row.Patient, row.Key, row.State, row.Severity)
	if a.Forecast {
		s += " forecast"
	}
	if a.Forecast != strings.HasSuffix(row.Key, "#forecast") {
		s += " FORECAST-MISMATCH"
	}
	if row.AckedBy != "" {
		s += " acked=" + row.AckedBy
	}
	if row.AckedBy != "" && row.AckedAt.IsZero() || row.AckedBy == "" && !row.AckedAt.IsZero() {
		s += " ACKED-AT-MISMATCH"
	}
	if row.ResolvedBy != "" {
		s += " resolved=" + row.ResolvedBy
	}
	if (row.State == registry.AlertResolved) != !row.ResolvedAt.IsZero() {
		s += " RESOLVED-AT-MISMATCH"
	}
	if a.Tier != "" || row.Tier != -1 {
		s += fmt.Sprintf(" tier=%s(%d)", a.Tier, row.Tier)
	}
	if !row.SnoozedUntil.IsZero() {
		s += " snoozed-until=+" + row.SnoozedUntil.Sub(mtT0).String()
	}
	if a.NotJudged {
		s += " not-judged"
	}
	return s
}

// mtEventLine describes a stored event: kind[ by actor][: note].
func mtEventLine(ev registry.AlertEvent) string {
	s := ev.Kind
	if ev.Actor != "" {
		s += " by " + ev.Actor
	}
	if ev.Note != "" {
		s += ": " + ev.Note
	}
	return s
}

// mtNotifiedLine describes a notified event: change patient key @since-t0,
// with the tier and staff of an escalation.
func mtNotifiedLine(ev Event) string {
	key := ev.Alert.Rule
	if ev.Alert.Forecast {
		key += "#forecast"
	}
	// Rounded to the millisecond: update moves a stamp on by a microsecond
	// when two changes of an alert fall on one instant.
	s := fmt.Sprintf("%s %s %s @%v", ev.Change, ev.Alert.Patient, key, ev.At.Sub(mtT0).Round(time.Millisecond))
	if ev.Change == ChangeEscalated || ev.Tier != "" {
		s += fmt.Sprintf(" %s %v", ev.Tier, ev.OnCall)
	}
	if ev.Alert.SnoozedUntil != nil {
		s += " snoozed-until=+" + ev.Alert.SnoozedUntil.Sub(mtT0).String()
	}
	if ev.Alert.NotJudged {
		s += " not-judged"
	}
	return s
}

// mtStep is one step of a case: at a time after mtT0, a transition (recorded
// then handled), a tick, a restart (a new manager resumes) or a staff action.
type mtStep struct {
	at      time.Duration
	tr      *analysis.Transition
	tick    bool
	restart bool
	act     *mtAct
}

// mtAct is a staff action on the newest alert of the patient's key.
type mtAct struct {
	verb    string // ack, resolve or snooze
	patient string
	key     string
	actor   string
	note    string
	until   time.Duration // snooze: until mtT0+until
	wantErr string        // "", "acked", "not-active" or "bad"
}

func mtTr(at time.Duration, change, rule, severity string, value float64, sentence string) mtStep {
	if sentence == "" {
		sentence = fmt.Sprintf("%s %s at %g", rule, change, value)
	}
	return mtStep{at: at, tr: &analysis.Transition{Patient: mtP1, Rule: rule, Kind: "threshold", Change: change,
		Holds: change != analysis.ChangeCleared, Severity: severity, Metric: "heart_rate", Value: value, Bound: 100,
		Side: "above", PlanVersion: 1, At: mtT0.Add(at), Sentence: sentence}}
}

func mtFire(at time.Duration, rule, severity string, value float64) mtStep {
	return mtTr(at, analysis.ChangeFired, rule, severity, value, "")
}

func mtClear(at time.Duration, rule string) mtStep {
	return mtTr(at, analysis.ChangeCleared, rule, analysis.SeverityWarning, 90, "")
}

func mtForecast(at time.Duration, rule, severity string) mtStep {
	return mtTr(at, analysis.ChangeForecast, rule, severity, 95, "")
}

func mtForecastCleared(at time.Duration, rule string) mtStep {
	return mtTr(at, analysis.ChangeForecastCleared, rule, analysis.SeverityWarning, 80, "")
}

func mtNotJudged(at time.Duration, rule, sentence string) mtStep {
	return mtTr(at, analysis.ChangeNotJudged, rule, analysis.SeverityWarning, 0, sentence)
}

func mtJudged(at time.Duration, rule, sentence string) mtStep {
	return mtTr(at, analysis.ChangeJudged, rule, analysis.SeverityWarning, 0, sentence)
}

// mtUpdate is an update of a condition that holds and held before, as
// the evaluator sends at every sweep (and does not record).
func mtUpdate(at time.Duration, rule, severity string, value float64, sentence string) mtStep {
	return mtTr(at, analysis.ChangeUpdate, rule, severity, value, sentence)
}

// mtWith changes a copy of the step's transition.
func mtWith(s mtStep, fn func(*analysis.Transition)) mtStep {
	tr := *s.tr
	fn(&tr)
	s.tr = &tr
	return s
}

func mtTick(at time.Duration) mtStep    { return mtStep{at: at, tick: true} }
func mtRestart(at time.Duration) mtStep { return mtStep{at: at, restart: true} }

func mtAck(at time.Duration, key, actor, note, wantErr string) mtStep {
	return mtStep{at: at, act: &mtAct{verb: "ack", patient: mtP1, key: key, actor: actor, note: note, wantErr: wantErr}}
}

func mtResolve(at time.Duration, key, actor, note, wantErr string) mtStep {
	return mtStep{at: at, act: &mtAct{verb: "resolve", patient: mtP1, key: key, actor: actor, note: note, wantErr: wantErr}}
}

func mtSnooze(at time.Duration, key, actor string, until time.Duration, wantErr string) mtStep {
	return mtStep{at: at, act: &mtAct{verb: "snooze", patient: mtP1, key: key, actor: actor, until: until, wantErr: wantErr}}
}

// mtOn moves a step to another patient.
func mtOn(patient string, s mtStep) mtStep {
	if s.tr != nil {
		tr := *s.tr
		tr.Patient = patient
		s.tr = &tr
	}
	if s.act != nil {
		act := *s.act
		act.patient = patient
		s.act = &act
	}
	return s
}

func (r *mtRig) run(steps []mtStep) {
	r.t.Helper()
	last := time.Duration(-1)
	for i, s := range steps {
		if s.at < last {
			r.t.Fatalf("step %d: at %v is before the step before's %v", i, s.at, last)
		}
		last = s.at
		r.clk.set(mtT0.Add(s.at))
		switch {
		case s.tr != nil:
			if s.tr.Change != analysis.ChangeUpdate { // updates are not recorded
				r.record(*s.tr)
			}
			r.m.handle(r.ctx, *s.tr)
		case s.tick:
			r.m.Tick(r.ctx)
		case s.restart:
			r.m = r.newManager()
			if err := r.m.resume(r.ctx); err != nil {
				r.t.Fatalf("step %d: resume: %v", i, err)
			}
		case s.act != nil:
			r.do(i, *s.act)
		}
	}
}

func (r *mtRig) do(step int, act mtAct) {
	r.t.Helper()
	id := r.alertID(act.patient, act.key)
	var a Alert
	var err error
	switch act.verb {
	case "ack":
		a, err = r.m.Ack(r.ctx, id, act.actor, act.note)
	case "resolve":
		a, err = r.m.Resolve(r.ctx, id, act.actor, act.note)
	case "snooze":
		a, err = r.m.Snooze(r.ctx, id, act.actor, act.note, mtT0.Add(act.until))
	default:
		r.t.Fatalf("step %d: unknown action %q", step, act.verb)
	}
	ok := false
	switch act.wantErr {
	case "":
		ok = err == nil
	case "acked":
		ok = errors.Is(err, ErrAcked)
	case "not-active":
		ok = errors.Is(err, ErrNotActive)
	case "bad":
		ok = IsBadRequest(err)
	}
	if !ok {
		r.t.Errorf("step %d: %s %s by %s: err %v, want %q", step, act.verb, act.key, act.actor, err, act.wantErr)
	}
	if err == nil && (a.ID != id || a.UpdatedAt.IsZero()) {
		r.t.Errorf("step %d: %s returned %+v", step, act.verb, a)
	}
	if err != nil && a.ID != 0 {
		r.t.Errorf("step %d: %s failed (%v) but returned an alert %+v", step, act.verb, err, a)
	}
}

// mtCase is a sequence of steps and what the registry and the notifier
// hold after it.
type mtCase struct {
	name     string
	cfg      func(t *testing.T, c *Config)
	steps    []mtStep
	alerts   []string   // mtSummary of every alert, oldest first
	events   [][]string // mtEventLine of each alert's events, in the same order
	notified []string   // mtNotifiedLine of every notified event, in order
	kinds    []string   // when set, only events and notifications of these kinds are compared
	check    func(t *testing.T, r *mtRig)
}

func mtBaseConfig() Config {
	return Config{FireAfter: 0, ResolveAfter: 0, MaxOpenPerPatient: 5, Renotify: 24 * time.Hour, Tick: time.Second}
}

func mtRunCases(t *testing.T, cases []mtCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := mtBaseConfig()
			if c.cfg != nil {
				c.cfg(t, &cfg)
			}
			r := mtNewRig(t, cfg)
			r.run(c.steps)
			keep := func(kind string) bool { return c.kinds == nil || slices.Contains(c.kinds, kind) }

			rows := r.rows()
			var alerts []string
			var events [][]string
			for _, row := range rows {
				alerts = append(alerts, mtSummary(row))
				evs, err := r.reg.AlertEvents(r.ctx, row.ID)
				if err != nil {
					t.Fatal(err)
				}
				var lines []string
				for _, ev := range evs {
					if keep(ev.Kind) {
						lines = append(lines, mtEventLine(ev))
					}
				}
				events = append(events, lines)
			}
			var notified []string
			for _, ev := range r.rec.all() {
				if keep(ev.Change) {
					notified = append(notified, mtNotifiedLine(ev))
				}
			}
			mtSame(t, "alerts", alerts, c.alerts)
			if len(events) != len(c.events) {
				t.Errorf("events of %d alerts, want of %d:\n got %q\nwant %q", len(events), len(c.events), events, c.events)
			} else {
				for i := range events {
					mtSame(t, fmt.Sprintf("events of alert %d (%s)", rows[i].ID, rows[i].Key), events[i], c.events[i])
				}
			}
			mtSame(t, "notified", notified, c.notified)
			if c.check != nil {
				c.check(t, r)
			}
		})
	}
}

func mtSame(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %d: %s\nwant %d: %s", what, len(got), mtLines(got), len(want), mtLines(want))
	}
}

func mtLines(ss []string) string {
	if len(ss) == 0 {
		return "(none)"
	}
	return "\n\t" + strings.Join(ss, "\n\t")
}

const (
	mtWarn = analysis.SeverityWarning
	mtCrit = analysis.SeverityCritical
	mtInfo = analysis.SeverityInfo
	mtMin  = time.Minute
)

func TestManagerLifecycle(t *testing.T) {
	resolveAfter10 := func(_ *testing.T, c *Config) { c.ResolveAfter = 10 * mtMin }
	mtRunCases(t, []mtCase{
		{
			name:     "fired opens an alert",
			steps:    []mtStep{mtFire(0, "r1", mtWarn, 120)},
			alerts:   []string{"p1 r1 firing warning"},
			events:   [][]string{{"opened"}},
			notified: []string{"opened p1 r1 @0s"},
			check: func(t *testing.T, r *mtRig) {
				a := r.alert(r.alertID(mtP1, "r1"))
				if a.Value != 120 || a.Bound != 100 || a.PlanVersion != 1 || a.Sentence != "r1 fired at 120" || !a.OpenedAt.Equal(mtT0) {
					t.Errorf("alert = %+v", a)
				}
				if ev := r.rec.all()[0]; ev.Alert.ID != a.ID || ev.Alert.State != registry.AlertFiring || ev.Actor != "" {
					t.Errorf("notified %+v, want alert %d firing by patientpulse", ev, a.ID)
				}
			},
		},
		{
			name:     "a repeat with a new value updates the same alert",
			steps:    []mtStep{mtFire(0, "r1", mtWarn, 120), mtFire(mtMin, "r1", mtWarn, 130)},
			alerts:   []string{"p1 r1 firing warning"},
			events:   [][]string{{"opened", "updated"}},
			notified: []string{"opened p1 r1 @0s", "updated p1 r1 @1m0s"},
			check: func(t *testing.T, r *mtRig) {
				evs := r.rec.all()
				if evs[0].Alert.ID != evs[1].Alert.ID {
					t.Errorf("updated alert %d, opened %d", evs[1].Alert.ID, evs[0].Alert.ID)
				}
				if a := r.alert(evs[0].Alert.ID); a.Value != 130 || a.Sentence != "r1 fired at 130" || !a.OpenedAt.Equal(mtT0) || !a.UpdatedAt.Equal(mtT0.Add(mtMin)) {
					t.Errorf("alert = %+v, want value 130, opened at t0, updated at t0+1m", a)
				}
			},
		},
		{
			name:     "a higher severity raises it",
			steps:    []mtStep{mtFire(0, "r1", mtWarn, 120), mtFire(mtMin, "r1", mtCrit, 150)},
			alerts:   []string{"p1 r1 firing critical"},
			events:   [][]string{{"opened", "severity_raised"}},
			notified: []string{"opened p1 r1 @0s", "severity_raised p1 r1 @1m0s"},
			check: func(t *testing.T, r *mtRig) {
				if ev := r.rec.all()[1]; ev.Alert.Severity != mtCrit {
					t.Errorf("severity_raised carries %s", ev.Alert.Severity)
				}
			},
		},
		{
			name:     "an acknowledged alert fires again when its severity rises",
			steps:    []mtStep{mtFire(0, "r1", mtWarn, 120), mtAck(mtMin, "r1", "alice", "", ""), mtFire(2*mtMin, "r1", mtCrit, 150)},
			alerts:   []string{"p1 r1 firing critical"},
			events:   [][]string{{"opened", "acknowledged by alice", "severity_raised"}},
			notified: []string{"opened p1 r1 @0s", "acknowledged p1 r1 @1m0s", "severity_raised p1 r1 @2m0s"},
			check: func(t *testing.T, r *mtRig) {
				if a := r.alert(r.alertID(mtP1, "r1")); a.AckedAt != nil || a.AckedBy != "" || a.State != registry.AlertFiring {
					t.Errorf("alert = %+v, want firing and not acknowledged", a)
				}
			},
		},
		{
			name:     "an acknowledged alert stays acknowledged on a repeat of its severity",
			steps:    []mtStep{mtFire(0, "r1", mtWarn, 120), mtAck(mtMin, "r1", "alice", "", ""), mtFire(2*mtMin, "r1", mtWarn, 125)},
			alerts:   []string{"p1 r1 acknowledged warning acked=alice"},
			events:   [][]string{{"opened", "acknowledged by alice", "updated"}},
			notified: []string{"opened p1 r1 @0s", "acknowledged p1 r1 @1m0s", "updated p1 r1 @2m0s"},
		},
		{
			name:     "a lower severity does not lower it",
			steps:    []mtStep{mtFire(0, "r1", mtCrit, 150), mtFire(mtMin, "r1", mtWarn, 120), mtFire(2*mtMin, "r1", mtInfo, 110)},
			alerts:   []string{"p1 r1 firing critical"},
			events:   [][]string{{"opened", "updated", "updated"}},
			notified: []string{"opened p1 r1 @0s", "updated p1 r1 @1m0s", "updated p1 r1 @2m0s"},
		},
		{
			name: "FireAfter: a condition that clears before it is due never opens an alert",
			cfg:  func(_ *testing.T, c *Config) { c.FireAfter = 5 * mtMin },
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtTick(mtMin), mtClear(2*mtMin, "r1"), mtTick(5 * mtMin),
				mtTick(10 * mtMin), mtTick(time.Hour)},
		},
		{
			name:     "FireAfter: opens at the first tick at the bound, not before",
			cfg:      func(_ *testing.T, c *Config) { c.FireAfter = 5 * mtMin },
			steps:    []mtStep{mtFire(0, "r1", mtWarn, 120), mtTick(4 * mtMin), mtTick(5*mtMin - time.Millisecond), mtTick(5 * mtMin), mtTick(6 * mtMin)},
			alerts:   []string{"p1 r1 firing warning"},
			events:   [][]string{{"opened"}},
			notified: []string{"opened p1 r1 @5m0s"},
			check: func(t *testing.T, r *mtRig) {
				if a := r.alert(r.alertID(mtP1, "r1")); !a.OpenedAt.Equal(mtT0.Add(5 * mtMin)) {
					t.Errorf("opened at %v, want t0+5m", a.OpenedAt)
				}
			},
		},
		{
			name:     "FireAfter: a repeat while pending does not restart the wait",
			cfg:      func(_ *testing.T, c *Config) { c.FireAfter = 5 * mtMin },
			steps:    []mtStep{mtFire(0, "r1", mtWarn, 120), mtFire(3*mtMin, "r1", mtWarn, 125), mtTick(5 * mtMin)},
			alerts:   []string{"p1 r1 firing warning"},
			events:   [][]string{{"opened"}},
			notified: []string{"opened p1 r1 @5m0s"},
		},
		{
			name:     "ResolveAfter: cleared then fired again within it stays open",
			cfg:      resolveAfter10,
			steps:    []mtStep{mtFire(0, "r1", mtWarn, 120), mtClear(mtMin, "r1"), mtTick(5 * mtMin), mtFire(6*mtMin, "r1", mtWarn, 121), mtTick(11 * mtMin), mtTick(time.Hour)},
			alerts:   []string{"p1 r1 firing warning"},
			events:   [][]string{{"opened", "updated"}},
			notified: []string{"opened p1 r1 @0s", "updated p1 r1 @6m0s"},
		},
		{
			name:     "ResolveAfter: cleared for long enough resolves by patientpulse",
			cfg:      resolveAfter10,
			steps:    []mtStep{mtFire(0, "r1", mtWarn, 120), mtClear(mtMin, "r1"), mtTick(11*mtMin - time.Second), mtTick(11 * mtMin), mtTick(time.Hour)},
			alerts:   []string{"p1 r1 resolved warning resolved=patientpulse"},
			events:   [][]string{{"opened", "resolved: the condition cleared"}},
			notified: []string{"opened p1 r1 @0s", "resolved p1 r1 @11m0s"},
			check: func(t *testing.T, r *mtRig) {
				a := r.alert(r.alertID(mtP1, "r1"))
				if a.ResolvedAt == nil || !a.ResolvedAt.Equal(mtT0.Add(11*mtMin)) || a.Sentence != "r1 cleared at 90" {
					t.Errorf("alert = %+v, want resolved at t0+11m with the clearing's sentence", a)
				}
				if ev := r.rec.all()[1]; ev.Note != "the condition cleared" || ev.Actor != "" || ev.Alert.ResolvedBy != "patientpulse" {
					t.Errorf("notified %+v", ev)
				}
			},
		},
		{
			name:  "a fired after a resolution opens a new alert",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtClear(mtMin, "r1"), mtFire(2*mtMin, "r1", mtWarn, 122)},
			alerts: []string{
				"p1 r1 resolved warning resolved=patientpulse",
				"p1 r1 firing warning",
			},
			events:   [][]string{{"opened", "resolved: the condition cleared"}, {"opened"}},
			notified: []string{"opened p1 r1 @0s", "resolved p1 r1 @1m0s", "opened p1 r1 @2m0s"},
			check: func(t *testing.T, r *mtRig) {
				evs := r.rec.all()
				if evs[0].Alert.ID == evs[2].Alert.ID {
					t.Errorf("the new alert has the old one's id %d", evs[0].Alert.ID)
				}
			},
		},
		{
			name: "a forecast has its own alert beside the rule's",
			steps: []mtStep{mtForecast(0, "r1", mtWarn), mtFire(mtMin, "r1", mtCrit, 150), mtForecastCleared(2*mtMin, "r1"),
				mtForecast(3*mtMin, "r2", mtWarn), mtFire(4*mtMin, "r2", mtWarn, 130), mtClear(5*mtMin, "r2")},
			alerts: []string{
				"p1 r1#forecast resolved warning forecast resolved=patientpulse",
				"p1 r1 firing critical",
				"p1 r2#forecast firing warning forecast",
				"p1 r2 resolved warning resolved=patientpulse",
			},
			events: [][]string{
				{"opened", "resolved: the condition cleared"},
				{"opened"},
				{"opened"},
				{"opened", "resolved: the condition cleared"},
			},
			notified: []string{
				"opened p1 r1#forecast @0s", "opened p1 r1 @1m0s", "resolved p1 r1#forecast @2m0s",
				"opened p1 r2#forecast @3m0s", "opened p1 r2 @4m0s", "resolved p1 r2 @5m0s",
			},
			check: func(t *testing.T, r *mtRig) {
				if ev := r.rec.all()[0]; !ev.Alert.Forecast || ev.Alert.Rule != "r1" {
					t.Errorf("forecast notified as %+v", ev.Alert)
				}
			},
		},
		{
			name: "not_judged and judged update an active alert",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtNotJudged(mtMin, "r1", "too little data to judge r1"),
				mtJudged(2*mtMin, "r1", "r1 judges again")},
			alerts:   []string{"p1 r1 firing warning"},
			events:   [][]string{{"opened", "updated", "updated"}},
			notified: []string{"opened p1 r1 @0s", "updated p1 r1 @1m0s not-judged", "updated p1 r1 @2m0s"},
			check: func(t *testing.T, r *mtRig) {
				evs := r.rec.all()
				if evs[1].Alert.Sentence != "too little data to judge r1" || evs[2].Alert.Sentence != "r1 judges again" {
					t.Errorf("sentences %q, %q", evs[1].Alert.Sentence, evs[2].Alert.Sentence)
				}
				if a := r.alert(evs[0].Alert.ID); a.Sentence != "r1 judges again" || a.Value != 120 {
					t.Errorf("alert = %+v", a)
				}
			},
		},
		{
			name:     "not_judged stays on an alert until judged",
			steps:    []mtStep{mtFire(0, "r1", mtWarn, 120), mtNotJudged(mtMin, "r1", "too little data"), mtTick(2 * mtMin)},
			alerts:   []string{"p1 r1 firing warning not-judged"},
			events:   [][]string{{"opened", "updated"}},
			notified: []string{"opened p1 r1 @0s", "updated p1 r1 @1m0s not-judged"},
		},
		{
			name:  "not_judged without an alert changes nothing",
			steps: []mtStep{mtNotJudged(0, "r1", "too little data"), mtJudged(mtMin, "r1", "judges"), mtTick(2 * mtMin)},
		},
	})
}

func TestManagerCap(t *testing.T) {
	cap2 := func(_ *testing.T, c *Config) { c.MaxOpenPerPatient = 2 }
	mtRunCases(t, []mtCase{
		{
			name: "beyond the cap non-critical alerts are suppressed until there is room",
			cfg:  cap2,
			steps: []mtStep{
				mtFire(0, "r1", mtWarn, 1), mtFire(mtMin, "r2", mtInfo, 2), mtFire(2*mtMin, "r3", mtWarn, 3),
				mtFire(3*mtMin, "r4", mtCrit, 4),
				mtOn(mtP2, mtFire(5*mtMin, "r1", mtWarn, 6)), mtOn(mtP2, mtFire(5*mtMin, "r2", mtWarn, 7)),
				mtTick(6 * mtMin),
				mtResolve(7*mtMin, "r1", "alice", "", ""),
				mtTick(8 * mtMin), mtTick(9 * mtMin),
			},
			alerts: []string{
				"p1 r1 resolved warning resolved=alice",
				"p1 r2 firing info",
				"p1 r3 firing warning",
				"p1 r4 firing critical",
				"p2 r1 firing warning",
				"p2 r2 firing warning",
			},
			events: [][]string{
				{"opened", "resolved by alice"},
				{"opened"},
				{"suppressed", "unsuppressed"},
				{"opened"},
				{"opened"},
				{"opened"},
			},
			notified: []string{
				"opened p1 r1 @0s", "opened p1 r2 @1m0s", "suppressed p1 r3 @2m0s", "opened p1 r4 @3m0s",
				"opened p2 r1 @5m0s", "opened p2 r2 @5m0s",
				"resolved p1 r1 @7m0s", "unsuppressed p1 r3 @8m0s",
			},
			check: func(t *testing.T, r *mtRig) {
				active, err := r.m.Active(r.ctx)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, a := range active {
					got = append(got, a.Patient+" "+a.Rule)
				}
				mtSame(t, "Active", got, []string{"p2 r2", "p2 r1", "p1 r4", "p1 r3", "p1 r2"})
			},
		},
		{
			name: "room for one lets in only the oldest suppressed alert",
			cfg:  cap2,
			steps: []mtStep{
				mtFire(0, "r1", mtWarn, 1), mtFire(mtMin, "r2", mtInfo, 2), mtFire(2*mtMin, "r3", mtWarn, 3),
				mtFire(3*mtMin, "r4", mtCrit, 4), mtFire(4*mtMin, "r5", mtWarn, 5),
				mtTick(6 * mtMin),
				mtResolve(7*mtMin, "r1", "alice", "", ""),
				mtTick(8 * mtMin), mtTick(9 * mtMin),
			},
			alerts: []string{
				"p1 r1 resolved warning resolved=alice",
				"p1 r2 firing info",
				"p1 r3 firing warning",
				"p1 r4 firing critical",
				"p1 r5 suppressed warning",
			},
			events: [][]string{
				{"opened", "resolved by alice"},
				{"opened"},
				{"suppressed", "unsuppressed"},
				{"opened"},
				{"suppressed"},
			},
			notified: []string{
				"opened p1 r1 @0s", "opened p1 r2 @1m0s", "suppressed p1 r3 @2m0s", "opened p1 r4 @3m0s",
				"suppressed p1 r5 @4m0s", "resolved p1 r1 @7m0s", "unsuppressed p1 r3 @8m0s",
			},
		},
		{
			name: "an acknowledged alert counts against the cap; a cleared one makes room",
			cfg:  cap2,
			steps: []mtStep{
				mtFire(0, "r1", mtWarn, 1), mtAck(mtMin, "r1", "alice", "", ""), mtFire(2*mtMin, "r2", mtWarn, 2),
				mtFire(3*mtMin, "r3", mtWarn, 3), mtTick(4 * mtMin), mtClear(5*mtMin, "r2"), mtTick(6 * mtMin),
			},
			alerts: []string{
				"p1 r1 acknowledged warning acked=alice",
				"p1 r2 resolved warning resolved=patientpulse",
				"p1 r3 firing warning",
			},
			events: [][]string{
				{"opened", "acknowledged by alice"},
				{"opened", "resolved: the condition cleared"},
				{"suppressed", "unsuppressed"},
			},
			notified: []string{
				"opened p1 r1 @0s", "acknowledged p1 r1 @1m0s", "opened p1 r2 @2m0s", "suppressed p1 r3 @3m0s",
				"resolved p1 r2 @5m0s", "unsuppressed p1 r3 @6m0s",
			},
		},
		{
			name: "a suppressed alert whose condition clears is resolved",
			cfg:  func(_ *testing.T, c *Config) { c.MaxOpenPerPatient = 1 },
			steps: []mtStep{
				mtFire(0, "r1", mtWarn, 1), mtFire(mtMin, "r2", mtWarn, 2), mtClear(2*mtMin, "r2"), mtTick(3 * mtMin),
			},
			alerts:   []string{"p1 r1 firing warning", "p1 r2 resolved warning resolved=patientpulse"},
			events:   [][]string{{"opened"}, {"suppressed", "resolved: the condition cleared"}},
			notified: []string{"opened p1 r1 @0s", "suppressed p1 r2 @1m0s", "resolved p1 r2 @2m0s"},
		},
		{
			name: "a suppressed alert that becomes critical is not capped",
			cfg:  func(_ *testing.T, c *Config) { c.MaxOpenPerPatient = 1 },
			steps: []mtStep{
				mtFire(0, "r1", mtWarn, 1), mtFire(mtMin, "r2", mtWarn, 2), mtFire(2*mtMin, "r2", mtCrit, 3), mtTick(3 * mtMin),
			},
			alerts: []string{"p1 r1 firing warning", "p1 r2 firing critical"},
			// However the manager words it, the critical alert must end up firing.
			kinds:  []string{},
			events: [][]string{nil, nil},
		},
	})
}

func TestManagerEscalation(t *testing.T) {
	sched := func(t *testing.T, c *Config) { c.Schedule = mtParse(t, mtSchedule) }
	escalatedOnly := []string{ChangeOpened, ChangeEscalated}
	mtRunCases(t, []mtCase{
		{
			name: "an unacknowledged critical alert climbs the tiers",
			cfg:  sched,
			steps: []mtStep{mtFire(0, "r1", mtCrit, 150), mtTick(time.Second), mtTick(2 * mtMin), mtTick(15*mtMin - time.Second),
				mtTick(15 * mtMin), mtTick(16 * mtMin), mtTick(45*mtMin - time.Second), mtTick(45 * mtMin), mtTick(3 * time.Hour)},
			alerts: []string{"p1 r1 firing critical tier=consultant(2)"},
			events: [][]string{{"opened", "escalated: on call: nina, otto", "escalated: on call: dr-lee", "escalated: on call: dr-khan"}},
			notified: []string{"opened p1 r1 @0s", "escalated p1 r1 @1s primary [nina otto]",
				"escalated p1 r1 @15m0s secondary [dr-lee]", "escalated p1 r1 @45m0s consultant [dr-khan]"},
			check: func(t *testing.T, r *mtRig) {
				evs, err := r.reg.AlertEvents(r.ctx, r.alertID(mtP1, "r1"))
				if err != nil {
					t.Fatal(err)
				}
				var body struct {
					Tier   string   `json:"tier"`
					OnCall []string `json:"on_call"`
				}
				if err := json.Unmarshal(evs[2].Body, &body); err != nil || body.Tier != "secondary" || !slices.Equal(body.OnCall, []string{"dr-lee"}) {
					t.Errorf("stored escalation body %s (%v)", evs[2].Body, err)
				}
				if ev := r.rec.all()[2]; ev.Alert.Tier != "secondary" {
					t.Errorf("notified alert tier %q, want secondary", ev.Alert.Tier)
				}
			},
		},
		{
			name: "acknowledging before 15m stops the escalation",
			cfg:  sched,
			steps: []mtStep{mtFire(0, "r1", mtCrit, 150), mtTick(time.Second), mtAck(10*mtMin, "r1", "otto", "", ""),
				mtTick(15 * mtMin), mtTick(45 * mtMin), mtTick(3 * time.Hour)},
			alerts:   []string{"p1 r1 acknowledged critical acked=otto tier=primary(0)"},
			events:   [][]string{{"opened", "escalated: on call: nina, otto", "acknowledged by otto"}},
			notified: []string{"opened p1 r1 @0s", "escalated p1 r1 @1s primary [nina otto]", "acknowledged p1 r1 @10m0s"},
		},
		{
			name: "a snoozed alert does not escalate until its snooze ends",
			cfg:  sched,
			steps: []mtStep{mtFire(0, "r1", mtCrit, 150), mtTick(time.Second), mtSnooze(2*mtMin, "r1", "otto", 30*mtMin, ""),
				mtTick(15 * mtMin), mtTick(29 * mtMin), mtTick(30 * mtMin), mtTick(30*mtMin + time.Second), mtTick(31 * mtMin), mtTick(45 * mtMin)},
			alerts: []string{"p1 r1 firing critical tier=consultant(2)"},
			events: [][]string{{"opened", "escalated: on call: nina, otto", "snoozed by otto", "updated: the snooze ended",
				"escalated: on call: dr-lee", "escalated: on call: dr-khan"}},
			notified: []string{"opened p1 r1 @0s", "escalated p1 r1 @1s primary [nina otto]", "snoozed p1 r1 @2m0s snoozed-until=+30m0s",
				"updated p1 r1 @30m0s", "escalated p1 r1 @30m1s secondary [dr-lee]", "escalated p1 r1 @45m0s consultant [dr-khan]"},
		},
		{
			name: "warnings never escalate",
			cfg:  sched,
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtFire(0, "r2", mtInfo, 120), mtTick(time.Second), mtTick(15 * mtMin),
				mtTick(45 * mtMin), mtTick(5 * time.Hour)},
			alerts:   []string{"p1 r1 firing warning", "p1 r2 firing info"},
			events:   [][]string{{"opened"}, {"opened"}},
			notified: []string{"opened p1 r1 @0s", "opened p1 r2 @0s"},
		},
		{
			name: "a warning that becomes critical escalates",
			cfg:  sched,
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtTick(time.Second), mtFire(5*mtMin, "r1", mtCrit, 150),
				mtTick(6 * mtMin), mtTick(15 * mtMin)},
			alerts: []string{"p1 r1 firing critical tier=secondary(1)"},
			events: [][]string{{"opened", "severity_raised", "escalated: on call: nina, otto", "escalated: on call: dr-lee"}},
			notified: []string{"opened p1 r1 @0s", "severity_raised p1 r1 @5m0s", "escalated p1 r1 @6m0s primary [nina otto]",
				"escalated p1 r1 @15m0s secondary [dr-lee]"},
		},
		{
			name:     "nobody on call in a tier",
			cfg:      func(t *testing.T, c *Config) { c.Schedule = mtParse(t, mtSparseSchedule) },
			steps:    []mtStep{mtFire(0, "r1", mtCrit, 150), mtTick(time.Second), mtTick(15 * mtMin), mtTick(time.Hour)},
			alerts:   []string{"p1 r1 firing critical tier=secondary(1)"},
			events:   [][]string{{"opened", "escalated: on call: otto", "escalated: nobody is on call in this tier now"}},
			notified: []string{"opened p1 r1 @0s", "escalated p1 r1 @1s primary [otto]", "escalated p1 r1 @15m0s secondary []"},
		},
		{
			name:     "no schedule, no escalation",
			steps:    []mtStep{mtFire(0, "r1", mtCrit, 150), mtTick(time.Second), mtTick(time.Hour)},
			alerts:   []string{"p1 r1 firing critical"},
			events:   [][]string{{"opened"}},
			notified: []string{"opened p1 r1 @0s"},
		},
		{
			name: "restart: an alert that reached secondary escalates to nothing new",
			cfg:  sched,
			steps: []mtStep{mtFire(0, "r1", mtCrit, 150), mtTick(time.Second), mtTick(15 * mtMin), mtRestart(20 * mtMin),
				mtTick(21 * mtMin), mtTick(45*mtMin - time.Second), mtTick(45 * mtMin)},
			kinds:  escalatedOnly,
			alerts: []string{"p1 r1 firing critical tier=consultant(2)"},
			events: [][]string{{"opened", "escalated: on call: nina, otto", "escalated: on call: dr-lee", "escalated: on call: dr-khan"}},
			notified: []string{"opened p1 r1 @0s", "escalated p1 r1 @1s primary [nina otto]",
				"escalated p1 r1 @15m0s secondary [dr-lee]", "escalated p1 r1 @45m0s consultant [dr-khan]"},
		},
		{
			name:   "restart: an alert that reached only primary goes to secondary at once",
			cfg:    sched,
			steps:  []mtStep{mtFire(0, "r1", mtCrit, 150), mtTick(time.Second), mtRestart(20 * mtMin), mtTick(21 * mtMin)},
			kinds:  escalatedOnly,
			alerts: []string{"p1 r1 firing critical tier=secondary(1)"},
			events: [][]string{{"opened", "escalated: on call: nina, otto", "escalated: on call: dr-lee"}},
			notified: []string{"opened p1 r1 @0s", "escalated p1 r1 @1s primary [nina otto]",
				"escalated p1 r1 @20m0s secondary [dr-lee]"},
		},
		{
			name:     "restart: an acknowledged alert stays unescalated",
			cfg:      sched,
			steps:    []mtStep{mtFire(0, "r1", mtCrit, 150), mtTick(time.Second), mtAck(mtMin, "r1", "otto", "", ""), mtRestart(20 * mtMin), mtTick(time.Hour)},
			kinds:    []string{ChangeOpened, ChangeEscalated, ChangeAcknowledged},
			alerts:   []string{"p1 r1 acknowledged critical acked=otto tier=primary(0)"},
			events:   [][]string{{"opened", "escalated: on call: nina, otto", "acknowledged by otto"}},
			notified: []string{"opened p1 r1 @0s", "escalated p1 r1 @1s primary [nina otto]", "acknowledged p1 r1 @1m0s"},
		},
	})
}

func TestManagerRestart(t *testing.T) {
	mtRunCases(t, []mtCase{
		{
			name:     "a pending raise fires FireAfter after its transition",
			cfg:      func(_ *testing.T, c *Config) { c.FireAfter = 5 * mtMin },
			steps:    []mtStep{mtFire(0, "r1", mtWarn, 120), mtRestart(3 * mtMin), mtTick(5*mtMin - time.Second), mtTick(5 * mtMin), mtTick(6 * mtMin)},
			alerts:   []string{"p1 r1 firing warning"},
			events:   [][]string{{"opened"}},
			notified: []string{"opened p1 r1 @5m0s"},
			check: func(t *testing.T, r *mtRig) {
				if a := r.alert(r.alertID(mtP1, "r1")); a.Value != 120 || a.Sentence != "r1 fired at 120" {
					t.Errorf("alert = %+v, want the recorded transition's value and sentence", a)
				}
			},
		},
		{
			name:     "a pending raise that is due at the restart fires at once",
			cfg:      func(_ *testing.T, c *Config) { c.FireAfter = 5 * mtMin },
			steps:    []mtStep{mtFire(0, "r1", mtWarn, 120), mtRestart(7 * mtMin)},
			alerts:   []string{"p1 r1 firing warning"},
			events:   [][]string{{"opened"}},
			notified: []string{"opened p1 r1 @7m0s"},
		},
		{
			name:     "a pending forecast fires FireAfter after its transition",
			cfg:      func(_ *testing.T, c *Config) { c.FireAfter = 5 * mtMin },
			steps:    []mtStep{mtForecast(0, "r1", mtWarn), mtRestart(3 * mtMin), mtTick(4 * mtMin), mtTick(5 * mtMin)},
			alerts:   []string{"p1 r1#forecast firing warning forecast"},
			events:   [][]string{{"opened"}},
			notified: []string{"opened p1 r1#forecast @5m0s"},
		},
		{
			name:  "a raise that cleared before the restart stays away",
			cfg:   func(_ *testing.T, c *Config) { c.FireAfter = 5 * mtMin },
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtClear(2*mtMin, "r1"), mtRestart(3 * mtMin), mtTick(5 * mtMin), mtTick(time.Hour)},
		},
		{
			name: "a pending clear resolves ResolveAfter after its transition",
			cfg:  func(_ *testing.T, c *Config) { c.ResolveAfter = 10 * mtMin },
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtClear(2*mtMin, "r1"), mtRestart(5 * mtMin),
				mtTick(12*mtMin - time.Second), mtTick(12 * mtMin), mtTick(13 * mtMin)},
			alerts:   []string{"p1 r1 resolved warning resolved=patientpulse"},
			events:   [][]string{{"opened", "resolved: the condition cleared"}},
			notified: []string{"opened p1 r1 @0s", "resolved p1 r1 @12m0s"},
		},
		{
			name:     "a clear that is due at the restart resolves at once",
			cfg:      func(_ *testing.T, c *Config) { c.ResolveAfter = 10 * mtMin },
			steps:    []mtStep{mtFire(0, "r1", mtWarn, 120), mtClear(2*mtMin, "r1"), mtRestart(15 * mtMin)},
			alerts:   []string{"p1 r1 resolved warning resolved=patientpulse"},
			events:   [][]string{{"opened", "resolved: the condition cleared"}},
			notified: []string{"opened p1 r1 @0s", "resolved p1 r1 @15m0s"},
		},
		{
			name: "a restart leaves an open alert alone",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtNotJudged(mtMin, "r1", "too little data"),
				mtRestart(5 * mtMin), mtTick(6 * mtMin)},
			alerts:   []string{"p1 r1 firing warning not-judged"},
			events:   [][]string{{"opened", "updated"}},
			notified: []string{"opened p1 r1 @0s", "updated p1 r1 @1m0s not-judged"},
		},
	})
}

// TestManagerOnCallPatients: only firing and acknowledged alerts make a
// patient visible to on-call staff, and so does one resolved since the
// time asked.
func TestManagerOnCallPatients(t *testing.T) {
	cfg := mtBaseConfig()
	cfg.MaxOpenPerPatient = 1
	r := mtNewRig(t, cfg, "p1", "p2", "p3", "p4", "p5")
	on := func(p string, s mtStep) mtStep { return mtOn(p, s) }
	r.run([]mtStep{
		on("p1", mtFire(0, "r1", mtWarn, 1)),
		on("p2", mtFire(0, "r1", mtCrit, 1)),
		on("p3", mtFire(0, "r1", mtWarn, 1)),
		on("p3", mtFire(0, "r2", mtWarn, 1)), // suppressed
		on("p4", mtFire(0, "r1", mtWarn, 1)),
		on("p4", mtClear(mtMin, "r1")), // resolved
		on("p2", mtAck(2*mtMin, "r1", "alice", "", "")),
		on("p3", mtResolve(3*mtMin, "r1", "alice", "", "")), // p3 keeps only a suppressed alert
	})
	want := func(want ...string) {
		t.Helper()
		got, err := r.reg.OnCallPatients(r.ctx, mtT0.Add(time.Hour)) // resolved before: not seen
		if err != nil {
			t.Fatal(err)
		}
		mtSame(t, "OnCallPatients", got, want)
		active, err := r.m.Active(r.ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ps []string
		for _, a := range active {
			if !a.Active() {
				t.Errorf("Active returned %+v", a)
			}
			ps = append(ps, a.Patient)
		}
		slices.Sort(ps)
		mtSame(t, "patients of Active", slices.Compact(ps), want)
	}
	want("p1", "p2")
	r.run([]mtStep{mtTick(4 * mtMin)}) // p3's suppressed alert comes in
	want("p1", "p2", "p3")
	r.run([]mtStep{on("p1", mtResolve(5*mtMin, "r1", "bob", "", "")), on("p3", mtClear(5*mtMin, "r2"))})
	want("p2")
	// Resolved since: seen, to follow up (p4 at 1 min, p3 at 3 and 5, p1 at 5).
	for _, c := range []struct {
		since time.Duration
		want  []string
	}{{0, []string{"p1", "p2", "p3", "p4"}}, {2 * mtMin, []string{"p1", "p2", "p3"}}, {4 * mtMin, []string{"p1", "p2", "p3"}}} {
		got, err := r.reg.OnCallPatients(r.ctx, mtT0.Add(c.since))
		if err != nil {
			t.Fatal(err)
		}
		mtSame(t, fmt.Sprintf("OnCallPatients resolved since %v", c.since), got, c.want)
	}
}

// TestManagerNotifiesAfterStoring: every change is written to the outbox
// with its alert's event (mtRecorder checks each), and wakes delivery once.
func TestManagerNotifiesAfterStoring(t *testing.T) {
	cfg := mtBaseConfig()
	cfg.Schedule = mtParse(t, mtSchedule)
	cfg.MaxOpenPerPatient = 1
	r := mtNewRig(t, cfg)
	r.run([]mtStep{
		mtFire(0, "r1", mtCrit, 150), mtFire(0, "r2", mtWarn, 1), mtFire(0, "r3", mtWarn, 1),
		mtTick(time.Second), mtFire(mtMin, "r1", mtCrit, 160), mtNotJudged(2*mtMin, "r1", "x"),
		mtAck(3*mtMin, "r1", "alice", "", ""), mtSnooze(4*mtMin, "r2", "alice", 5*mtMin, ""), mtTick(5 * mtMin),
		mtResolve(6*mtMin, "r2", "alice", "", ""), mtTick(7 * mtMin), mtClear(8*mtMin, "r3"),
	})
	var changes []string
	for _, ev := range r.rec.all() {
		changes = append(changes, ev.Change)
	}
	mtSame(t, "changes", changes, []string{"opened", "opened", "suppressed", "escalated", "updated", "updated",
		"acknowledged", "snoozed", "updated", "resolved", "unsuppressed", "resolved"})
	if n := r.rec.woken.Load(); n != int64(len(changes)) {
		t.Errorf("the manager woke delivery %d times for %d changes", n, len(changes))
	}
}

// TestManagerStoppedWhileStarting: a serve stopped while the manager
// resumes ends cleanly, not with the registry's "context canceled".
func TestManagerStoppedWhileStarting(t *testing.T) {
	r := mtNewRig(t, DefaultConfig())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.m.Run(ctx); err != nil {
		t.Errorf("Run stopped while resuming: %v, want nil", err)
	}
}
